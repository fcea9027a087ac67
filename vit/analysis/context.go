package analysis

import (
	"errors"
	"fmt"
	"io"
	"math"
)

// ContextComparison is the original's print_context_perturb (spec §3.7,
// A8): the identifiability left after a context perturbation beside the
// unperturbed run's, over the image tokens that the perturbation keeps, at
// the last block. The original compared a mean of per-image rates with
// [CLS] in every image's sequence against a rate pooled over image tokens;
// both of its numbers are here under their own names, with the pooled rate
// of the perturbed run, which is the like-for-like comparison.
type ContextComparison struct {
	Drop string `json:"drop"` // "context" or "class_label"
	Kept string `json:"kept"` // the patch label of the kept image tokens
	// Perturbed run.
	Images                   int     `json:"images"`
	ImagesWithoutImageTokens int     `json:"images_without_image_tokens"`
	PerturbedAccuracy        float64 `json:"perturbed_accuracy"`
	// The original's perturbed rate: mean over every image of the share of
	// identifiable tokens of its sequence, [CLS] included.
	PerturbedSequenceShare float64 `json:"perturbed_sequence_share"`
	// The share of identifiable image tokens, pooled over every kept image token.
	PerturbedImageTop1 float64 `json:"perturbed_image_top1"`
	// Unperturbed run: the original's baseline, the share of identifiable
	// tokens pooled over the image tokens with the kept label ([CLS] out).
	UnperturbedImages   int     `json:"unperturbed_images"`
	UnperturbedAccuracy float64 `json:"unperturbed_accuracy"`
	UnperturbedTop1     float64 `json:"unperturbed_top1"`
}

// CompareContext builds the comparison of a perturb-tokens run (drop is its
// mode) with the unperturbed run over the same images.
func CompareContext(drop string, perturbed, unperturbed *Report) (*ContextComparison, error) {
	if len(perturbed.Blocks) == 0 || len(perturbed.Blocks) != len(unperturbed.Blocks) {
		return nil, fmt.Errorf("the perturbed run has %d blocks and the unperturbed %d: not the same model", len(perturbed.Blocks), len(unperturbed.Blocks))
	}
	if !unperturbed.HasPatchLabels() {
		return nil, errors.New("the unperturbed run has no patch labels: extract it from a dataset with segmentation masks (ImageNet-S)")
	}
	last := unperturbed.Blocks[len(unperturbed.Blocks)-1]
	c := &ContextComparison{Drop: drop, Images: perturbed.Images, ImagesWithoutImageTokens: perturbed.ImagesWithoutImageTokens,
		PerturbedAccuracy: perturbed.Accuracy, PerturbedSequenceShare: perturbed.IdentifiableSequenceShare,
		PerturbedImageTop1: perturbed.Blocks[len(perturbed.Blocks)-1].ImageTop1,
		UnperturbedImages:  unperturbed.Images, UnperturbedAccuracy: unperturbed.Accuracy}
	switch drop {
	case "context":
		c.Kept, c.UnperturbedTop1 = "class-labelled", last.ClassTop1
	case "class_label":
		c.Kept, c.UnperturbedTop1 = "context-labelled", last.ContextTop1
	default:
		return nil, fmt.Errorf("unknown drop mode %q (want context or class_label)", drop)
	}
	return c, nil
}

// WriteText prints the comparison as one table.
func (c *ContextComparison) WriteText(w io.Writer) {
	pct := func(v float64) string {
		if math.IsNaN(v) {
			return "-"
		}
		return fmt.Sprintf("%.2f", 100*v)
	}
	fmt.Fprintf(w, "context perturbation (--drop %s: [CLS] and the %s image tokens kept) against the unperturbed run, last block (the original's print_context_perturb)\n", c.Drop, c.Kept)
	fmt.Fprintln(w, "run\timages\taccuracy %\ttokens counted\tidentifiable %")
	fmt.Fprintf(w, "perturbed\t%d\t%s\tevery token of the sequence, [CLS] included, mean of per-image shares over all images (the original's perturbed rate)\t%s\n",
		c.Images, pct(c.PerturbedAccuracy), pct(c.PerturbedSequenceShare))
	fmt.Fprintf(w, "perturbed\t%d\t%s\tkept image tokens, pooled\t%s\n", c.Images, pct(c.PerturbedAccuracy), pct(c.PerturbedImageTop1))
	fmt.Fprintf(w, "unperturbed\t%d\t%s\t%s image tokens, pooled (the original's baseline)\t%s\n", c.UnperturbedImages, pct(c.UnperturbedAccuracy), c.Kept, pct(c.UnperturbedTop1))
	if c.ImagesWithoutImageTokens > 0 {
		fmt.Fprintf(w, "%d of the %d perturbed images kept no image token: each counts in the original's rate as its [CLS]-only sequence (1 if [CLS] is identifiable, else 0) and adds no token to the pooled rate\n",
			c.ImagesWithoutImageTokens, c.Images)
	}
}
