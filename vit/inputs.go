package vit

import (
	"errors"
	"fmt"
	"slices"
)

// The checks of what a forward pass is given. Every backend (this package's
// Forward, the GPU's Analyze, explain) calls these, so a bad input gets the
// same words whichever runs it.

// CheckInput says whether pixels is one preprocessed image for the model
// (Channels×ImageSize×ImageSize, as Preset.Apply returns).
func (c Config) CheckInput(pixels *Tensor) error {
	if pixels == nil || len(pixels.Data) != c.Channels*c.ImageSize*c.ImageSize {
		var shape []int
		if pixels != nil {
			shape = pixels.Shape
		}
		return fmt.Errorf("input is %v, model wants %d×%d×%d", shape, c.Channels, c.ImageSize, c.ImageSize)
	}
	return nil
}

// KeptTokens checks a token selection (Options.Keep) and returns the
// original token index of each sequence position it leaves: every token
// when keep is nil, else a copy of keep.
func (c Config) KeptTokens(keep []int) ([]int, error) {
	if keep == nil {
		tokens := make([]int, c.NumTokens())
		for i := range tokens {
			tokens[i] = i
		}
		return tokens, nil
	}
	if len(keep) == 0 {
		return nil, errors.New("token selection keeps no tokens")
	}
	if c.Pool == PoolCLS && keep[0] != 0 {
		// The classifier reads position 0; it must still be [CLS].
		return nil, errors.New("token selection must keep the [CLS] token (0) first: the classifier reads it")
	}
	if c.DistToken && (len(keep) < 2 || keep[1] != 1) {
		return nil, errors.New("token selection must keep the distillation token (1) second: the classifier reads it")
	}
	seen := make(map[int]bool, len(keep))
	for _, t := range keep {
		if t < 0 || t >= c.NumTokens() {
			return nil, fmt.Errorf("token %d out of range 0..%d", t, c.NumTokens()-1)
		}
		if seen[t] {
			return nil, fmt.Errorf("token %d kept twice", t)
		}
		seen[t] = true
	}
	return slices.Clone(keep), nil
}

// CheckEdit says whether the model can run an attention edit: both edits
// are defined by the [CLS] token.
func (c Config) CheckEdit(edit AttnEdit) error {
	switch edit {
	case EditNone:
		return nil
	case EditSelfOnly, EditNoCLS:
		if !c.ClassToken {
			return fmt.Errorf("attention edit %q needs a [CLS] token; this model has none", edit)
		}
		return nil
	}
	return fmt.Errorf("unknown attention edit %q (want none, self_only or no_cls)", edit)
}
