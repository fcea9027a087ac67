package dataset

import (
	"fmt"
	"image"
	"slices"
	"testing"
)

// fake has n items with labels i mod 4 and masks for even items only.
type fake struct{ n int }

func (f fake) Name() string      { return "fake" }
func (f fake) Len() int          { return f.n }
func (f fake) Classes() []string { return []string{"a", "b", "c", "d"} }
func (f fake) Skipped() []string { return []string{"x: skipped"} }
func (f fake) Item(i int) Item {
	return Item{Index: i, ID: fmt.Sprint("f", i), Label: i % 4, Concept: fmt.Sprint(i % 4)}
}
func (f fake) Image(i int) (image.Image, error) {
	return image.NewGray(image.Rect(0, 0, i+1, 1)), checkIndex("fake", i, f.n)
}
func (f fake) PatchLabels(i int, grid int) ([]uint8, bool, error) {
	return []uint8{uint8(i)}, true, checkIndex("fake", i, f.n)
}

func indices(ds Dataset) []int {
	var out []int
	for i := range ds.Len() {
		out = append(out, ds.Item(i).Index)
	}
	return out
}

func TestSelect(t *testing.T) {
	ds := fake{10}
	for _, c := range []struct {
		sel  Selection
		want []int
	}{
		{Selection{}, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}},
		{Selection{Limit: 3}, []int{0, 1, 2}},
		{Selection{Limit: 30}, []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}},
		{Selection{Classes: []int{3, 1}}, []int{1, 3, 5, 7, 9}},
		{Selection{Classes: []int{1}, Limit: 2}, []int{1, 5}},
		{Selection{Shard: 1, NumShards: 3}, []int{3, 4, 5}},
		{Selection{Shard: 2, NumShards: 3}, []int{6, 7, 8, 9}},
		{Selection{Classes: []int{0, 2}, Limit: 4, Shard: 1, NumShards: 2}, []int{4, 6}},
		{Selection{Shard: 5, NumShards: 3}, nil}, // invalid: nothing
		{Selection{Classes: []int{7}}, nil},      // invalid: nothing
	} {
		if got := indices(Select(ds, c.sel)); !slices.Equal(got, c.want) {
			t.Errorf("%+v: %v, want %v", c.sel, got, c.want)
		}
	}

	v := Select(ds, Selection{Classes: []int{0, 1}})
	w := Select(v, Selection{Shard: 1, NumShards: 2}) // a view of a view
	if got := indices(w); !slices.Equal(got, []int{5, 8, 9}) {
		t.Errorf("view of view: %v", got)
	}
	if img, err := w.Image(0); err != nil || img.Bounds().Dx() != 6 {
		t.Errorf("view Image(0) reads parent item %v, %v; want item 5", img, err)
	}
	if p, ok, err := w.PatchLabels(2, 7); err != nil || !ok || p[0] != 9 {
		t.Errorf("view PatchLabels(2) = %v %v %v", p, ok, err)
	}
	if _, err := w.Image(3); err == nil {
		t.Error("view Image out of range: no error")
	}
	if !slices.Equal(Skipped(w), []string{"x: skipped"}) || w.Name() != "fake" || len(w.Classes()) != 4 {
		t.Error("view does not pass through Name/Classes/Skipped")
	}
}

// Shards of any selection partition it exactly, in order.
func TestShardsPartition(t *testing.T) {
	for _, n := range []int{0, 1, 2, 7, 10, 23} {
		ds := fake{n}
		for _, k := range []int{1, 2, 3, 4, 7, 11, 30} {
			var union []int
			for s := range k {
				part := indices(Select(ds, Selection{Limit: 20, Shard: s, NumShards: k}))
				if lo, hi := min(n, 20)/k, (min(n, 20)+k-1)/k; len(part) < lo || len(part) > hi {
					t.Errorf("n=%d k=%d shard %d has %d items", n, k, s, len(part))
				}
				union = append(union, part...)
			}
			if want := indices(Select(ds, Selection{Limit: 20})); !slices.Equal(union, want) {
				t.Errorf("n=%d k=%d: shards give %v, want %v", n, k, union, want)
			}
		}
	}
}

func TestSelectionValidate(t *testing.T) {
	ds := fake{10}
	for _, bad := range []Selection{
		{Limit: -1}, {Classes: []int{4}}, {Classes: []int{-1}},
		{Shard: 2, NumShards: 2}, {Shard: -1, NumShards: 2}, {NumShards: -1}, {Shard: 1},
	} {
		if bad.Validate(ds) == nil {
			t.Errorf("%+v: no error", bad)
		}
	}
	if err := (Selection{Limit: 3, Classes: []int{0, 3}, Shard: 1, NumShards: 2}).Validate(ds); err != nil {
		t.Error(err)
	}
}

func TestParseShard(t *testing.T) {
	if s, n, err := ParseShard("2/4"); s != 2 || n != 4 || err != nil {
		t.Errorf("2/4: %d %d %v", s, n, err)
	}
	for _, bad := range []string{"", "4/4", "-1/4", "1/0", "1", "a/b", "1/2/3"} {
		if _, _, err := ParseShard(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}
