// Package analysis turns per-token lens readouts into the paper's summary
// statistics (spec §3.3, §3.4, §3.8), one image at a time so that memory
// does not grow with the dataset.
package analysis

import "vitlens/vit"

// Patch labels of image tokens (spec §1.3).
const (
	LabelUnknown int8 = -1 // no segmentation, or [CLS]
	LabelContext int8 = 0
	LabelClass   int8 = 1
)

// Image holds every readout of one image, indexed [site][block][position].
// Sites that were not extracted have nil slices.
type Image struct {
	Image   int
	Label   int // the target class (true label)
	Correct bool
	// Tokens maps sequence positions to original token indices; token 0 is
	// [CLS] when HasCLS. The Extra tokens after it (a distillation token
	// or registers) are not image tokens either: no statistic of image
	// tokens counts them.
	Tokens      []int
	HasCLS      bool
	Extra       int
	PatchLabels []int8 // per position
	Rank        [vit.NumSites][][]int32
	Top1        [vit.NumSites][][]int32
	Logit       [vit.NumSites][][]float32 // the target's logit
}

// NewImage allocates an Image for the given sites, blocks and positions.
func NewImage(sites []vit.Site, depth, positions int) *Image {
	im := &Image{Tokens: make([]int, positions), PatchLabels: make([]int8, positions)}
	for i := range im.PatchLabels {
		im.PatchLabels[i] = LabelUnknown
	}
	for _, s := range sites {
		im.Rank[s] = make([][]int32, depth)
		im.Top1[s] = make([][]int32, depth)
		im.Logit[s] = make([][]float32, depth)
		for b := 0; b < depth; b++ {
			im.Rank[s][b] = make([]int32, positions)
			im.Top1[s][b] = make([]int32, positions)
			im.Logit[s][b] = make([]float32, positions)
		}
	}
	return im
}

// isCLS reports whether position p holds the [CLS] token.
func (im *Image) isCLS(p int) bool { return im.HasCLS && im.Tokens[p] == 0 }

// isImage reports whether position p holds a patch token.
func (im *Image) isImage(p int) bool {
	first := im.Extra
	if im.HasCLS {
		first++
	}
	return im.Tokens[p] >= first
}
