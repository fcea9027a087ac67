package lens

import (
	"fmt"

	"vitlens/vit"
)

// Readout is what the lens keeps of one site at one block for every token:
// never all C logits, only the target's rank and logit and the top-k classes.
type Readout struct {
	Site        vit.Site
	Block       int
	Rank        []int32   // per token
	TargetLogit []float32 // per token
	Top         []int32   // per token × K, best first
	K           int
	// Entropy (nats) of the lens distribution softmax(logits) per token, and
	// KL (nats) from the last block's hs distribution of the same token to
	// it, KL(final ‖ this): the statistics tuned-lens users compare lenses
	// by. Every backend computes them.
	Entropy []float32
	KL      []float32
}

// TopOf returns the top-k classes of sequence position t.
func (r *Readout) TopOf(t int) []int32 { return r.Top[t*r.K : (t+1)*r.K] }

// TopKPastClasses is the top-k every model accepts, even one with fewer
// classes (entries past its class count read -1); a model with more classes
// accepts up to its class count. A backend may bound top-k further (the GPU
// lens kernel keeps a fixed-length list).
const TopKPastClasses = 5

// Request says what to compute for a batch of images.
type Request struct {
	Sites []vit.Site // sites to project at every block
	TopK  int        // classes kept per token (5 in the paper)
	Edit  vit.AttnEdit
	// Keep, when non-nil, holds per image the token positions kept after the
	// position embeddings (context perturbation); a nil entry keeps all.
	Keep [][]int
	// Targets holds per image the class whose rank is read out; a negative
	// entry means "the model's own top-1 prediction".
	Targets []int
	// Taps asks for raw tensors beyond the lens readouts (attention maps,
	// values, fc1) for analyses that need them; backends return them in
	// Result.Trace.
	Taps vit.Taps
	// Lens, when set, translates the residual sites (hs, hs_mid) before the
	// final LayerNorm: the tuned lens. Nil is the plain lens.
	Lens *Translators
	// AfterBlock, when set, is called after each block of each image (see
	// vit.Options.AfterBlock); backends that do not run block by block on
	// the calling thread may ignore it. An error it returns stops the
	// analysis.
	AfterBlock func(block int) error
	// Record asks for the forward pass's activations (vit.Options.Record)
	// in Result.Activations, so that what else reads the same forward (the
	// explanation maps' backward, DLA) reuses it instead of running its
	// own. The CPU backend keeps them; others may not (nil).
	Record bool
}

// Result is one image's analysis.
type Result struct {
	Target   int
	Tokens   []int     // original token index of each sequence position
	Logits   []float32 // the model's own output
	Readouts []Readout // Sites × Depth, site-major in Request.Sites order
	Trace    *vit.Trace
	// Activations is the forward's record when Request.Record asked for it
	// and the backend keeps one (nil otherwise): tens of megabytes, which
	// the caller drops once used.
	Activations *vit.Activations
}

// At returns the readout of a site at a block, or nil when not requested.
// It looks readouts up by their own Site and Block, so results built by any
// backend answer it; a result holds at most a few dozen readouts.
func (r *Result) At(s vit.Site, block int) *Readout {
	for i := range r.Readouts {
		if ro := &r.Readouts[i]; ro.Site == s && ro.Block == block {
			return ro
		}
	}
	return nil
}

// Validate checks a request against a model and a batch size.
func (q *Request) Validate(c vit.Config, batch int) error {
	if q.TopK < 1 || q.TopK > max(c.Classes, TopKPastClasses) {
		return fmt.Errorf("top-k must be in 1..%d, got %d", max(c.Classes, TopKPastClasses), q.TopK)
	}
	if q.Keep != nil && len(q.Keep) != batch {
		return fmt.Errorf("token selections for %d images, batch has %d", len(q.Keep), batch)
	}
	if q.Targets != nil && len(q.Targets) != batch {
		return fmt.Errorf("targets for %d images, batch has %d", len(q.Targets), batch)
	}
	for _, t := range q.Targets {
		if t >= c.Classes {
			return fmt.Errorf("target class %d out of range (model has %d classes)", t, c.Classes)
		}
	}
	if q.Lens != nil && (q.Lens.Dim != c.Dim || q.Lens.Depth != c.Depth) {
		return fmt.Errorf("translators for a %d-wide, %d-block model; this one is %d wide with %d blocks", q.Lens.Dim, q.Lens.Depth, c.Dim, c.Depth)
	}
	seen := map[vit.Site]bool{}
	for _, s := range q.Sites {
		if s < 0 || s >= vit.NumSites || seen[s] {
			return fmt.Errorf("bad or repeated site %v", s)
		}
		seen[s] = true
	}
	return nil
}
