package session

import (
	"fmt"
	"math"
	"slices"
	"time"

	"vitlens/vit"
	"vitlens/vit/lens"
)

// TopK is the number of classes kept per token, as in the paper.
const TopK = 5

// Settings are the user's choices for one analysis.
type Settings struct {
	// Target is the class whose rank is read out; -1 means the model's own
	// prediction on the unperturbed image.
	Target int
	Edit   vit.AttnEdit
	// Drop lists the token indices removed from the sequence (context
	// perturbation), sorted.
	Drop []int
	// Lens, when set, is a tuned lens: every run is also read through its
	// translators (Analysis.Tuned, TunedAfter).
	Lens *lens.Translators
	// Record keeps the unperturbed run's forward activations in
	// Base.Activations (where the backend keeps them: the CPU), so that the
	// explanation maps and DLA reuse that forward (explain.MapRecorded,
	// dla.FromActivations). Not a choice of the user's: the engine sets it
	// when it computes either, and drops the activations once used.
	Record bool
}

// Intervened reports whether the settings perturb the forward pass.
func (s Settings) Intervened() bool { return s.Edit != vit.EditNone || len(s.Drop) > 0 }

// Toggle returns s with token t dropped, or restored when it was dropped.
func (s Settings) Toggle(t int) Settings {
	drop := slices.Clone(s.Drop)
	if i, found := slices.BinarySearch(drop, t); found {
		drop = slices.Delete(drop, i, i+1)
	} else {
		drop = slices.Insert(drop, i, t)
	}
	s.Drop = drop
	return s
}

// Analysis is everything the views show for one image.
type Analysis struct {
	// Seq numbers analyses. It comes first so that comparing two analyses
	// field by field (reflect.DeepEqual, as go-app does to decide whether a
	// view changed) stops at once instead of walking every readout.
	Seq      int
	Model    *Model
	Image    *Image
	Input    *Input
	Settings Settings
	// Base is the unperturbed run; After the run with the intervention, nil
	// when there is none. Both read out the same target class.
	Base, After *lens.Result
	// Tuned and TunedAfter are the same runs read through Settings.Lens
	// (the tuned lens on hs and hs_mid), nil without one.
	Tuned, TunedAfter *lens.Result
	// BaseMemories and AfterMemories are Base's and After's top memories
	// (TopMemories of their traces), what the memories view reads: the
	// engine sends these instead of the traces' coefficients. Nil when a
	// run's trace has no coefficients.
	BaseMemories, AfterMemories *MemoryTop
	Backend                     string // which backend computed the readouts
	// TapsBackend says where the attention maps and memory coefficients came
	// from when the main backend could not return them.
	TapsBackend string
	Elapsed     time.Duration
	// EngineID is the engine's number for the analysis (its request's ID),
	// which names it in later requests (the attention rows of a token);
	// 0 where no engine made it.
	EngineID int
}

// Current is the run the views focus on: After when there is one.
func (a *Analysis) Current() *lens.Result {
	if a.After != nil {
		return a.After
	}
	return a.Base
}

// CurrentMemories is the top memories of Current.
func (a *Analysis) CurrentMemories() *MemoryTop {
	if a.After != nil {
		return a.AfterMemories
	}
	return a.BaseMemories
}

// Predicted is the model's top-1 class on the unperturbed image.
func (a *Analysis) Predicted() int { return lens.Argmax(a.Base.Logits) }

// Runs is how many lens runs Analyze makes for s: the unperturbed image,
// the intervention, and each again through a tuned lens (progress counts
// them).
func (s Settings) Runs() int {
	n := 1
	if s.Intervened() {
		n = 2
	}
	if s.Lens != nil {
		n *= 2
	}
	return n
}

// Request is the lens request the app makes: every site, top-5 classes,
// attention maps and both kinds of memory coefficients.
func Request(target int, edit vit.AttnEdit, keep []int) lens.Request {
	req := lens.Request{Sites: vit.AllSites(), TopK: TopK, Edit: edit, Targets: []int{target},
		Taps: vit.Taps{AttnProbs: true, FC1: true, Heads: true}}
	if keep != nil {
		req.Keep = [][]int{keep}
	}
	return req
}

// Keep turns dropped tokens into the kept sequence positions, or nil when
// nothing is dropped.
func Keep(c vit.Config, drop []int) ([]int, error) {
	if len(drop) == 0 {
		return nil, nil
	}
	var keep []int
	for t := 0; t < c.NumTokens(); t++ {
		if _, found := slices.BinarySearch(drop, t); !found {
			keep = append(keep, t)
		}
	}
	if len(keep) == 0 {
		return nil, fmt.Errorf("every token is dropped: keep at least one patch")
	}
	for t := range c.FirstImageToken() { // the sorted keep starts 0, 1, ... when none was dropped
		if t >= len(keep) || keep[t] != t {
			return nil, fmt.Errorf("%s cannot be dropped", TokenLabel(c, t))
		}
	}
	return keep, nil
}

// Analyze runs the unperturbed image and, when the settings ask for it, the
// intervention, on be; fallback (may be nil) supplies attention maps and
// memory coefficients when be cannot. pause is called after every block of
// the CPU forward with the block's index, and with -1 before every run but
// the first, so a single-threaded page can paint and its engine can report
// progress during long work; an error it returns (the user cancelled) stops
// the analysis, which returns it. pause may be nil.
func Analyze(be, fallback lens.Backend, m *Model, img *Image, in *Input, s Settings, pause func(block int) error) (*Analysis, error) {
	start := time.Now()
	a := &Analysis{Model: m, Image: img, Input: in, Settings: s, Backend: be.Name()}
	keep, err := Keep(m.Model.Config, s.Drop)
	if err != nil {
		return nil, err
	}
	if s.Target >= m.Model.Config.Classes {
		return nil, fmt.Errorf("target class %d out of range (model has %d classes)", s.Target, m.Model.Config.Classes)
	}
	if pause == nil {
		pause = func(int) error { return nil }
	}
	yield := func(req lens.Request) lens.Request {
		req.AfterBlock = pause
		return req
	}
	base := yield(Request(s.Target, vit.EditNone, nil))
	base.Record = s.Record
	if a.Base, a.TapsBackend, err = run(be, fallback, in.Pixels, base); err != nil {
		return nil, err
	}
	if a.BaseMemories, err = memoriesOf(a.Base); err != nil {
		return nil, err
	}
	if s.Intervened() {
		if err := pause(-1); err != nil {
			return nil, err
		}
		// The intervention reads out the same class as the baseline, so the
		// two ranks compare.
		if a.After, _, err = run(be, fallback, in.Pixels, yield(Request(a.Base.Target, s.Edit, keep))); err != nil {
			return nil, err
		}
		if a.AfterMemories, err = memoriesOf(a.After); err != nil {
			return nil, err
		}
	}
	if s.Lens != nil {
		// The same runs through the translators: the views toggle between
		// the two lenses without a new analysis.
		if err := pause(-1); err != nil {
			return nil, err
		}
		req := yield(Request(a.Base.Target, vit.EditNone, nil))
		req.Lens, req.Taps = s.Lens, vit.Taps{}
		if a.Tuned, _, err = run(be, nil, in.Pixels, req); err != nil {
			return nil, fmt.Errorf("tuned lens: %w", err)
		}
		a.Tuned.Trace = a.Base.Trace // the forward is the same; only the readouts differ
		if a.After != nil {
			if err := pause(-1); err != nil {
				return nil, err
			}
			req := yield(Request(a.Base.Target, s.Edit, keep))
			req.Lens, req.Taps = s.Lens, vit.Taps{}
			if a.TunedAfter, _, err = run(be, nil, in.Pixels, req); err != nil {
				return nil, fmt.Errorf("tuned lens: %w", err)
			}
			a.TunedAfter.Trace = a.After.Trace
		}
	}
	a.Elapsed = time.Since(start)
	return a, nil
}

// ThroughLens returns the analysis as the views show it: with tuned set
// (and a tuned lens loaded), a copy whose Base and After are the tuned
// runs; a itself otherwise (the curve view reads a, to show both lenses).
func (a *Analysis) ThroughLens(tuned bool) *Analysis {
	if a == nil || !tuned || a.Tuned == nil {
		return a
	}
	c := *a
	c.Base, c.After = a.Tuned, a.TunedAfter
	return &c
}

// run asks be for everything; when its trace lacks the raw taps it asks the
// fallback for them and merges.
func run(be, fallback lens.Backend, pixels *vit.Tensor, req lens.Request) (*lens.Result, string, error) {
	res, err := be.Analyze([]*vit.Tensor{pixels}, req)
	if err != nil && fallback != nil {
		// Retry the readouts without taps, then fetch the taps on the fallback.
		lean := req
		lean.Taps = vit.Taps{}
		if res, err = be.Analyze([]*vit.Tensor{pixels}, lean); err != nil {
			return nil, "", err
		}
		res[0].Trace = nil
	}
	if err != nil {
		return nil, "", err
	}
	r := res[0]
	if hasTaps(r.Trace) || fallback == nil {
		return r, "", nil
	}
	full, err := fallback.Analyze([]*vit.Tensor{pixels}, req)
	if err != nil {
		return nil, "", fmt.Errorf("attention maps on %s: %w", fallback.Name(), err)
	}
	r.Trace, r.Activations = full[0].Trace, full[0].Activations
	return r, fallback.Name(), nil
}

// memoriesOf summarises a run's memory coefficients; nil when its trace
// has none.
func memoriesOf(r *lens.Result) (*MemoryTop, error) {
	if tr := r.Trace; tr == nil || tr.FC1 == nil || tr.Heads == nil {
		return nil, nil
	}
	return TopMemories(r.Trace)
}

func hasTaps(tr *vit.Trace) bool {
	return tr != nil && tr.AttnProbs != nil && tr.FC1 != nil && tr.Heads != nil
}

// Scored is a class with its logit and softmax probability.
type Scored struct {
	Class int
	Name  string
	Logit float32
	Prob  float64
}

// Top returns the k most probable classes of a result's logits.
func (m *Model) Top(r *lens.Result, k int) []Scored {
	k = min(k, len(r.Logits))
	idx := make([]int32, k)
	lens.TopK(idx, r.Logits)
	probs := softmax(r.Logits)
	out := make([]Scored, k)
	for i, c := range idx {
		out[i] = Scored{Class: int(c), Name: m.ClassName(int(c)), Logit: r.Logits[c], Prob: probs[c]}
	}
	return out
}

func softmax(v []float32) []float64 {
	mx := math.Inf(-1)
	for _, x := range v {
		mx = max(mx, float64(x))
	}
	out := make([]float64, len(v))
	var sum float64
	for i, x := range v {
		out[i] = math.Exp(float64(x) - mx)
		sum += out[i]
	}
	for i := range out {
		out[i] /= sum
	}
	return out
}

// Curve returns, per block, the identifiability 1 − rank/C of the target at
// site s for the [CLS] token and averaged over the image tokens still in the
// sequence. cls is nil for models without [CLS].
func Curve(r *lens.Result, c vit.Config, s vit.Site) (cls, img []float64) {
	for b := 0; b < c.Depth; b++ {
		ro := r.At(s, b)
		var sum float64
		n := 0
		for pos, tok := range r.Tokens {
			id := lens.Identifiability(int(ro.Rank[pos]), c.Classes)
			switch c.TokenKind(tok) {
			case vit.KindCLS:
				cls = append(cls, id)
				continue
			case vit.KindDist, vit.KindRegister:
				continue // not an image token
			}
			sum += id
			n++
		}
		if n > 0 {
			img = append(img, sum/float64(n))
		} else {
			img = append(img, math.NaN())
		}
	}
	return cls, img
}

// Position returns the sequence position of token t in r, or -1 when it was
// dropped.
func Position(r *lens.Result, t int) int {
	for pos, tok := range r.Tokens {
		if tok == t {
			return pos
		}
	}
	return -1
}

// TokenLabel names a token for people: "[CLS]", "distillation token",
// "register 1" or "patch (row, col)".
func TokenLabel(c vit.Config, t int) string {
	switch c.TokenKind(t) {
	case vit.KindCLS:
		return "[CLS]"
	case vit.KindDist:
		return "distillation token"
	case vit.KindRegister:
		return fmt.Sprintf("register %d", t-c.FirstImageToken()+c.Registers+1)
	}
	t -= c.FirstImageToken()
	g := c.GridSize()
	return fmt.Sprintf("patch (%d, %d)", t/g, t%g)
}
