package checkpoint

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// HeadsUnknownError says that a checkpoint gives no head count (torchvision
// and plain timm files do not) and that none can be assumed, because its
// width is not a multiple of the standard head size 64. Front ends catch it
// to ask the user, offering HeadChoices.
type HeadsUnknownError struct{ Dim int }

func (e *HeadsUnknownError) Error() string {
	var opts []string
	for _, h := range HeadChoices(e.Dim) {
		opts = append(opts, fmt.Sprintf("%d (head size %d)", h, e.Dim/h))
	}
	return fmt.Sprintf("the number of attention heads is not in the checkpoint and width %d is not a multiple of 64, "+
		"so it cannot be assumed: give it with --heads N (possible: %s) or as \"heads\" in config.json",
		e.Dim, strings.Join(opts, ", "))
}

// HeadChoices lists the head counts possible for width dim, most likely
// first: those giving a head size of 32-128 (every published ViT), the
// standard size 64 first, then by closeness to 64 on a log scale. A toy
// width with no such divisor lists all its divisors in the same order.
func HeadChoices(dim int) []int {
	var usual, all []int
	for h := 1; h <= dim; h++ {
		if dim%h != 0 {
			continue
		}
		all = append(all, h)
		if s := dim / h; s >= 32 && s <= 128 {
			usual = append(usual, h)
		}
	}
	out := usual
	if len(out) == 0 {
		out = all
	}
	far := func(h int) float64 { return math.Abs(math.Log2(float64(dim) / float64(h) / 64)) }
	slices.SortStableFunc(out, func(a, b int) int {
		if d := far(a) - far(b); d != 0 {
			return int(math.Copysign(1, d))
		}
		return a - b // equally far: the larger head size
	})
	return out
}
