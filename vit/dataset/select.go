package dataset

import (
	"fmt"
	"image"
	"slices"
	"strconv"
	"strings"
)

// Selection picks the part of a dataset a run processes (the --classes,
// --limit and --shard flags). They apply in that order: the class filter,
// then the first Limit items, then the shard, so the shards of a limited run
// partition exactly the items the unsharded run would see.
type Selection struct {
	Limit   int   // keep the first Limit items; 0 keeps all
	Classes []int // keep items whose Label is listed; empty keeps all
	// Shard and NumShards keep the Shard-th (0-based) of NumShards contiguous
	// blocks; NumShards 0 or 1 keeps all. Contiguous blocks (not i mod n) so
	// that concatenating shard outputs in shard order gives the unsharded
	// order; block sizes differ by at most one.
	Shard, NumShards int
}

// Validate reports a Selection that Select cannot honour for ds. Select
// itself never fails; call Validate on user input first.
func (s Selection) Validate(ds Dataset) error {
	if s.Limit < 0 {
		return fmt.Errorf("limit %d is negative", s.Limit)
	}
	if s.NumShards < 0 || (s.NumShards > 0 && (s.Shard < 0 || s.Shard >= s.NumShards)) ||
		(s.NumShards == 0 && s.Shard != 0) {
		return fmt.Errorf("shard %d/%d: want 0 <= shard < n", s.Shard, s.NumShards)
	}
	c := len(ds.Classes())
	for _, k := range s.Classes {
		if k < 0 || k >= c {
			return fmt.Errorf("class %d out of range: %s has %d classes", k, ds.Name(), c)
		}
	}
	return nil
}

// ParseShard parses the --shard flag "i/n" (0 <= i < n).
func ParseShard(s string) (shard, n int, err error) {
	a, b, found := strings.Cut(s, "/")
	if found {
		shard, err = strconv.Atoi(strings.TrimSpace(a))
		if err == nil {
			n, err = strconv.Atoi(strings.TrimSpace(b))
		}
	}
	if !found || err != nil || n < 1 || shard < 0 || shard >= n {
		return 0, 0, fmt.Errorf("shard %q: want i/n with 0 <= i < n, e.g. 0/4", s)
	}
	return shard, n, nil
}

// Select returns a deterministic view of ds holding the selected items, in
// ds's order and with their original Item.Index. An invalid Selection (see
// Validate) selects nothing rather than panicking.
func Select(ds Dataset, sel Selection) Dataset {
	if sel.Limit == 0 && len(sel.Classes) == 0 && sel.NumShards <= 1 && sel.Shard == 0 {
		return ds
	}
	base, idx := ds, []int(nil)
	if v, ok := ds.(*view); ok {
		base, idx = v.parent, v.idx
	} else {
		idx = make([]int, ds.Len())
		for i := range idx {
			idx[i] = i
		}
	}
	if sel.Validate(ds) != nil {
		return &view{parent: base}
	}
	if len(sel.Classes) > 0 {
		kept := idx[:0:0]
		for _, j := range idx {
			if slices.Contains(sel.Classes, base.Item(j).Label) {
				kept = append(kept, j)
			}
		}
		idx = kept
	}
	if sel.Limit > 0 && sel.Limit < len(idx) {
		idx = idx[:sel.Limit]
	}
	if sel.NumShards > 1 {
		n := len(idx)
		idx = idx[sel.Shard*n/sel.NumShards : (sel.Shard+1)*n/sel.NumShards]
	}
	return &view{parent: base, idx: slices.Clip(idx)}
}

// view is a subset of a parent dataset; idx maps view positions to parent
// positions.
type view struct {
	parent Dataset
	idx    []int
}

func (v *view) Name() string      { return v.parent.Name() }
func (v *view) Len() int          { return len(v.idx) }
func (v *view) Classes() []string { return v.parent.Classes() }
func (v *view) Item(i int) Item   { return v.parent.Item(v.idx[i]) }
func (v *view) Skipped() []string { return Skipped(v.parent) }
func (v *view) parentIndex(i int) (int, error) {
	if err := checkIndex(v.Name(), i, len(v.idx)); err != nil {
		return 0, err
	}
	return v.idx[i], nil
}

func (v *view) Image(i int) (image.Image, error) {
	j, err := v.parentIndex(i)
	if err != nil {
		return nil, err
	}
	return v.parent.Image(j)
}

func (v *view) PatchLabels(i int, grid int) ([]uint8, bool, error) {
	j, err := v.parentIndex(i)
	if err != nil {
		return nil, false, err
	}
	return v.parent.PatchLabels(j, grid)
}
