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
	// DistToken is true for distilled DeiT: a learned distillation token
	// follows [CLS] (timm dist_token); the head is the mean of timm's head
	// and head_dist, which is the model's eval output.
	DistToken bool `json:"dist_token,omitempty"`
	// Registers is the number of register tokens (timm reg_token, DINOv2
	// with registers) after [CLS]; they carry no image content.
	Registers int `json:"registers,omitempty"`
	// NormPre is a LayerNorm on the block-0 input (timm norm_pre; CLIP's
	// ln_pre).
	NormPre bool `json:"norm_pre,omitempty"`
	// Act is the MLP activation; "" is exact GELU (timm's default).
	Act Activation `json:"act,omitempty"`
}

// TokenKind says what a sequence position holds; only KindPatch tokens
// are image tokens in the statistics.
type TokenKind string

const (
	KindCLS      TokenKind = "cls"
	KindDist     TokenKind = "dist"
	KindRegister TokenKind = "register"
	KindPatch    TokenKind = "patch"
)

// GridSize is the number of patches along one side.
func (c Config) GridSize() int { return c.ImageSize / c.PatchSize }

// NumPatches is the number of image tokens.
func (c Config) NumPatches() int { g := c.GridSize(); return g * g }

// NumTokens is the sequence length: the prefix tokens, then the patches.
func (c Config) NumTokens() int { return c.FirstImageToken() + c.NumPatches() }

// HeadDim is the per-head width.
func (c Config) HeadDim() int { return c.Dim / c.Heads }

// FirstImageToken is the index of the first patch token in the sequence:
// the number of prefix tokens ([CLS], then the distillation token or the
// registers, in timm's order).
func (c Config) FirstImageToken() int {
	n := c.Registers
	if c.ClassToken {
		n++
	}
	if c.DistToken {
		n++
	}
	return n
}

// TokenKind is the kind of original token t (a sequence position of the
// full model, 0 ≤ t < NumTokens).
func (c Config) TokenKind(t int) TokenKind {
	if c.ClassToken {
		if t == 0 {
			return KindCLS
		}
		t--
	}
	if c.DistToken {
		if t == 0 {
			return KindDist
		}
		t--
	}
	if t < c.Registers {
		return KindRegister
	}
	return KindPatch
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
	if c.Act != "" {
		if _, err := ParseActivation(string(c.Act)); err != nil {
			errs = append(errs, fmt.Errorf("act: %w", err))
		}
	}
	if c.Registers < 0 {
		errs = append(errs, fmt.Errorf("registers must not be negative, got %d", c.Registers))
	}
	if c.DistToken && (!c.ClassToken || c.Registers > 0) {
		errs = append(errs, errors.New("dist_token needs a class token and no registers (distilled DeiT's layout)"))
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
