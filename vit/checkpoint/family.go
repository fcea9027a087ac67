package checkpoint

import (
	"fmt"
	"strconv"
	"strings"
)

// A family's table maps its tensor names onto timm's, which are canonical
// here. "{i}" stands for a block index. Part q/k/v marks Hugging Face's
// separate query, key and value tensors, fused into timm's qkv rows in
// that order.
type rename struct {
	from, to string
	part     part
}

type part int

const (
	whole part = iota
	q
	k
	v
	// skip marks a name the family's files carry that the forward pass
	// does not use (HF's mask token, position_ids buffer): known, not read.
	skip
)

type family struct {
	name Family
	// prefixes are optional leading scopes of the family's own names
	// (Hugging Face's "vit." / "deit." model attribute).
	prefixes []string
	lnEps    float32
	// headless: the family's bare model has no head (Dinov2Model); its
	// final embedding, the normed [CLS], is then the output (an identity
	// head, Classes = dim), for a --head file to read.
	headless bool
	table    []rename
}

var families = []*family{&timm, &hf, &hfDINOv2, &hfCLIP, &torchvision}

// match renames one tensor name, reporting its block index (-1 outside
// blocks).
func (f *family) match(name string) (to string, p part, block int, ok bool) {
	for _, pre := range f.prefixes {
		if s, found := strings.CutPrefix(name, pre); found {
			name = s
			break
		}
	}
	for _, r := range f.table {
		if i, ok := matchPattern(r.from, name); ok {
			return strings.Replace(r.to, "{i}", strconv.Itoa(i), 1), r.part, i, true
		}
	}
	return "", 0, -1, false
}

// maxBlocks bounds the block index a name may carry, so a forged name cannot
// make us list millions of missing tensors.
const maxBlocks = 1000

// matchPattern matches name against a pattern with at most one "{i}", which
// must be a plain decimal number (no sign, no leading zero).
func matchPattern(pattern, name string) (int, bool) {
	pre, suf, hasI := strings.Cut(pattern, "{i}")
	if !hasI {
		return -1, name == pattern
	}
	if len(name) <= len(pre)+len(suf) || !strings.HasPrefix(name, pre) || !strings.HasSuffix(name, suf) {
		return -1, false
	}
	digits := name[len(pre) : len(name)-len(suf)]
	if len(digits) > 1 && digits[0] == '0' {
		return -1, false
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return -1, false
		}
	}
	i, err := strconv.Atoi(digits)
	if err != nil || i >= maxBlocks {
		return -1, false
	}
	return i, true
}

// foreign gives the family's name(s) for a canonical name, for messages
// about missing tensors: the first table row that produces it, and all three
// of a fused q/k/v triple.
func (f *family) foreign(canon string) []string {
	var out []string
	for _, r := range f.table {
		i, ok := matchPattern(r.to, canon)
		if !ok {
			continue
		}
		out = append(out, strings.Replace(r.from, "{i}", strconv.Itoa(i), 1))
		if r.part == whole {
			break
		}
	}
	if len(out) == 0 {
		return []string{canon}
	}
	return out
}

// detect picks the family whose table matches the most names.
func detect(names []string) (*family, error) {
	var best *family
	bestN := 0
	for _, f := range families {
		n := 0
		for _, name := range names {
			if _, _, _, ok := f.match(name); ok {
				n++
			}
		}
		if n > bestN {
			best, bestN = f, n
		}
	}
	if best == nil {
		return nil, fmt.Errorf("no tensor name follows timm, Hugging Face or torchvision ViT naming (names: %s)", listNames(names))
	}
	return best, nil
}
