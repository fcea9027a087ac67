package vit

import (
	"fmt"
	"slices"
	"strings"
)

// Site names a place in a block whose per-token vectors can be read out and
// projected into class space.
type Site int

const (
	// SiteHS is the block output: the residual stream after the MLP addition
	// (the paper's hs_b, timm's blocks.b.add_1).
	SiteHS Site = iota
	// SiteHSMid is the residual stream after the attention addition. The
	// original code never extracts it; we do, so each sublayer's effect on the
	// stream can be seen on its own.
	SiteHSMid
	// SiteAttn is what the attention sublayer adds to the residual stream (the
	// out-projection output; for post-norm blocks, after their LN1).
	SiteAttn
	// SiteMLP is what the MLP sublayer adds to the residual stream (fc2 output;
	// for post-norm blocks, after their LN2).
	SiteMLP
	NumSites
)

var siteNames = [NumSites]string{"hs", "hs_mid", "attn", "mlp"}

func (s Site) String() string {
	if s >= 0 && s < NumSites {
		return siteNames[s]
	}
	return fmt.Sprintf("Site(%d)", int(s))
}

// ParseSite accepts the names String returns.
func ParseSite(name string) (Site, error) {
	for i, n := range siteNames {
		if n == name {
			return Site(i), nil
		}
	}
	return 0, fmt.Errorf("unknown site %q (want one of %s)", name, strings.Join(siteNames[:], ", "))
}

// AllSites lists every site in order.
func AllSites() []Site { return []Site{SiteHS, SiteHSMid, SiteAttn, SiteMLP} }

// Taps says which intermediate tensors a forward pass keeps. Memory scales
// with what is asked: an empty Taps keeps nothing but the logits.
type Taps struct {
	Sites     [NumSites]bool
	Embed     bool // the input of block 0 (patches + [CLS] + position embeddings)
	AttnProbs bool // post-softmax (and post-edit) attention, H×N×N per block
	Values    bool // per-head values V (bias included), H×N×HeadDim per block
	FC1       bool // fc1 output before GELU, N×MLPDim per block
	// Heads keeps the concatenated head outputs (A·V per head, before the
	// output projection), N×Dim per block: the attention "memory
	// coefficients" of the key-value analysis (spec §3.5).
	Heads bool
}

// TapSites returns Taps recording the given sites.
func TapSites(sites ...Site) Taps {
	var t Taps
	for _, s := range sites {
		t.Sites[s] = true
	}
	return t
}

// AttnEdit is an in-place edit of the post-softmax attention of every head in
// every block, applied before the weighted sum of values (vit_edited.py).
type AttnEdit string

const (
	EditNone AttnEdit = ""
	// EditSelfOnly makes every image token attend only to itself; the [CLS]
	// row is left alone.
	EditSelfOnly AttnEdit = "self_only"
	// EditNoCLS stops image tokens attending to [CLS]. Rows are deliberately
	// not renormalised, as in the original.
	EditNoCLS AttnEdit = "no_cls"
)

// ParseAttnEdit accepts "", "none", "self_only" and "no_cls".
func ParseAttnEdit(s string) (AttnEdit, error) {
	switch s {
	case "", "none":
		return EditNone, nil
	case string(EditSelfOnly), string(EditNoCLS):
		return AttnEdit(s), nil
	}
	return "", fmt.Errorf("unknown attention edit %q (want none, self_only or no_cls)", s)
}

// Options control one forward pass.
type Options struct {
	Taps Taps
	Edit AttnEdit
	// Keep lists the token positions (0-based; [CLS] is 0 when present) that
	// stay in the sequence after the position embeddings are added; the others
	// are dropped, shortening the sequence (context perturbation). Nil keeps all.
	Keep []int
	// AfterBlock, when set, is called after each block. The browser passes
	// a short yield so the page (or its engine's worker) can handle events
	// during a long forward pass; an error it returns (the user cancelled)
	// stops the forward, which returns it.
	AfterBlock func(block int) error
	// Hooks, when set, are called at their hook points (hooks.go) with the
	// activation there, before any tap or record reads it: a hook that
	// writes its tensor changes the rest of the forward (activation
	// patching). Nil runs the plain forward.
	Hooks HookFuncs
	// Record, when set, is filled with what a backward pass needs (see
	// Activations), so gradient methods run this forward pass instead of a
	// copy of it.
	Record *Activations
	// Reuse, when set, is an earlier trace whose Embed and Sites tensors
	// nobody reads any more: this forward copies those taps into them
	// instead of allocating new ones (the lens recycles the taps it reads
	// internally, about 30 MB per B/16 image). The returned trace owns them.
	Reuse *Trace
}

// Activations are the values a backward pass reads, recorded by Forward
// where each is computed (llm.c's ActivationTensors). With n the sequence
// length (len(Tokens)), every per-block slice is row-major n×D unless said.
// They reflect the forward that ran: with an edit, Probs are the edited
// probabilities.
type Activations struct {
	Tokens []int // original token index of each sequence position
	// Embed is hook_embed's value: the token embeddings (and prefix tokens)
	// before the position embedding, NumTokens rows (before any is dropped).
	Embed  []float32
	Blocks []BlockActivations
	Pooled []float32 // the classifier input before the final norm
	// PooledDist is distilled DeiT's second classifier input, the
	// distillation token's last hidden state before the final norm (nil
	// without a distillation token).
	PooledDist []float32
	Logits     []float32
}

// BlockActivations are one block's recorded values.
type BlockActivations struct {
	In      []float32 // block input (the residual stream)
	QKV     []float32 // n×3D: q, k, v blocks per row
	Probs   *Tensor   // H×n×n post-softmax attention
	Heads   []float32 // concatenated head outputs A·V, before the out-projection
	AttnOut []float32 // out-projection output, before a post-norm
	Mid     []float32 // residual stream after the attention addition
	FC1     []float32 // n×MLPDim fc1 output, before GELU
	MLPOut  []float32 // fc2 output, before a post-norm
}

// Trace is what a forward pass returns: logits plus the requested taps.
type Trace struct {
	// Tokens maps each sequence position to its original token index, which
	// differs from the position only when Options.Keep dropped tokens.
	Tokens    []int
	Embed     *Tensor
	Sites     [NumSites][]*Tensor // [site][block], each len(Tokens)×Dim; nil when not tapped
	AttnProbs []*Tensor           // [block] H×N×N
	Values    []*Tensor           // [block] H×N×HeadDim
	FC1       []*Tensor           // [block] N×MLPDim
	Heads     []*Tensor           // [block] N×Dim
	Pooled    []float32           // the classifier input after the final norm
	Logits    []float32
}

// keepTap returns v copied into the tensor old (shape n×d), or into a new
// one when old is nil or too small: a tap of Options.Reuse's.
func keepTap(old *Tensor, v []float32, n, d int) *Tensor {
	if old == nil || cap(old.Data) < len(v) || cap(old.Shape) < 2 {
		return &Tensor{Shape: []int{n, d}, Data: slices.Clone(v)}
	}
	old.Shape, old.Data = append(old.Shape[:0], n, d), old.Data[:len(v)]
	copy(old.Data, v)
	return old
}

// reusable is the tensor of t at site s and block b that a forward may
// overwrite (Options.Reuse), nil when t has none.
func (t *Trace) reusable(s Site, block int) *Tensor {
	if t == nil || block >= len(t.Sites[s]) {
		return nil
	}
	return t.Sites[s][block]
}

// Site returns the tapped tensor of a site at a block, or nil.
func (t *Trace) Site(s Site, block int) *Tensor {
	if t.Sites[s] == nil {
		return nil
	}
	return t.Sites[s][block]
}
