package vit

import (
	"errors"
	"fmt"
)

// Pooling says which vector of the last hidden state the classifier reads.
type Pooling string

const (
	// PoolCLS reads the [CLS] token (token 0) after the final norm.
	PoolCLS Pooling = "cls"
	// PoolMean averages all tokens, then applies fc_norm (timm global_pool='avg').
	PoolMean Pooling = "mean"
)

// Config describes one ViT architecture. Every field is inferred from tensor
// names and shapes by the checkpoint loader; config.json beside the weights or
// the user may override it.
type Config struct {
	ImageSize int     `json:"image_size"` // square input side in pixels
	PatchSize int     `json:"patch_size"`
	Channels  int     `json:"channels"`
	Dim       int     `json:"dim"`     // hidden size D
	Depth     int     `json:"depth"`   // number of blocks
	Heads     int     `json:"heads"`   // attention heads H; head dim is Dim/Heads
	MLPDim    int     `json:"mlp_dim"` // MLP hidden width (4D for standard ViTs)
	Classes   int     `json:"classes"` // classifier outputs C
	QKVBias   bool    `json:"qkv_bias"`
	LNEps     float32 `json:"ln_eps"`
	// ClassToken is true when a learned [CLS] token is prepended (all models
	// but the GAP variant).
	ClassToken bool    `json:"class_token"`
	Pool       Pooling `json:"pool"`
	// PostNorm selects timm's ResPostBlock (x + LN(sublayer(x))) instead of the
	// usual pre-norm block (x + sublayer(LN(x))). Used by vit_base_patch16_rpn_224.
	PostNorm bool `json:"post_norm"`
}

// GridSize is the number of patches along one side.
func (c Config) GridSize() int { return c.ImageSize / c.PatchSize }

// NumPatches is the number of image tokens.
func (c Config) NumPatches() int { g := c.GridSize(); return g * g }

// NumTokens is the sequence length: patches plus [CLS] when present.
func (c Config) NumTokens() int {
	if c.ClassToken {
		return c.NumPatches() + 1
	}
	return c.NumPatches()
}

// HeadDim is the per-head width.
func (c Config) HeadDim() int { return c.Dim / c.Heads }

// FirstImageToken is the index of the first patch token in the sequence.
func (c Config) FirstImageToken() int {
	if c.ClassToken {
		return 1
	}
	return 0
}

// Validate reports the first inconsistency, phrased for a person.
func (c Config) Validate() error {
	var errs []error
	pos := func(name string, v int) {
		if v <= 0 {
			errs = append(errs, fmt.Errorf("%s must be positive, got %d", name, v))
		}
	}
	pos("image_size", c.ImageSize)
	pos("patch_size", c.PatchSize)
	pos("channels", c.Channels)
	pos("dim", c.Dim)
	pos("depth", c.Depth)
	pos("heads", c.Heads)
	pos("mlp_dim", c.MLPDim)
	pos("classes", c.Classes)
	if len(errs) == 0 {
		if c.ImageSize%c.PatchSize != 0 {
			errs = append(errs, fmt.Errorf("image_size %d is not a multiple of patch_size %d", c.ImageSize, c.PatchSize))
		}
		if c.Dim%c.Heads != 0 {
			errs = append(errs, fmt.Errorf("dim %d is not divisible by heads %d", c.Dim, c.Heads))
		}
	}
	if !(c.LNEps > 0) {
		errs = append(errs, fmt.Errorf("ln_eps must be positive, got %g", c.LNEps))
	}
	switch c.Pool {
	case PoolCLS:
		if !c.ClassToken {
			errs = append(errs, errors.New("pool \"cls\" needs a class token"))
		}
	case PoolMean:
	default:
		errs = append(errs, fmt.Errorf("unknown pool %q (want \"cls\" or \"mean\")", c.Pool))
	}
	return errors.Join(errs...)
}
