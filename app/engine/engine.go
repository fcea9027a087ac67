// Package engine is everything heavy the web app does, behind one message
// protocol: parsing checkpoints, the forward pass and the lens (CPU or
// WebGPU), the explanation maps, the direct logit attribution, and the
// tools a click asks for (the memories' value classes, activation patching,
// the activations export, reading a tuned lens). It alone holds the models'
// weights: the page gets each model weightless. The page runs it in a
// dedicated Web Worker (the same app.wasm, started without a document), so
// the main thread only renders; where workers are unavailable the page
// calls the same Engine in-page. Requests and responses are plain
// structs sent in the flat binary format of codec.go. Nothing here touches
// the browser: the engine and its protocol are tested natively.
package engine

import (
	"errors"
	"fmt"
	"image"
	"image/draw"
	"io/fs"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"vitlens/app/figure"
	"vitlens/app/session"
	"vitlens/vit"
	"vitlens/vit/checkpoint"
	"vitlens/vit/dla"
	"vitlens/vit/explain"
	"vitlens/vit/lens"
	"vitlens/vit/preprocess"
)

// Kind says what a request asks for.
type Kind uint8

const (
	KindLoad        Kind = iota + 1 // Name, Data, Opt: parse a checkpoint
	KindDemo                        // Opt: the demo model (a head file may come with it)
	KindRandom                      // Model: a random initialisation of it (session.RandomSeed)
	KindAnalyze                     // Model, Image or Input, Settings, ...: the analysis and its derivations
	KindExplain                     // Model, Input, Settings.Target: the explanation maps alone
	KindRelease                     // Model: forget it (its GPU weights too)
	KindSamples                     // the demo's sample images, decoded
	KindDecode                      // Name, Data: decode an image file
	KindMemories                    // Model, Memories: the classes each memory's value promotes
	KindLens                        // Model, LensID, Name, Data: read a tuned lens for the model
	KindPatch                       // Model, Input (clean), Image (corrupted), Preset, Patch: a patching map
	KindPatchCell                   // Model, PatchID, Cell: one cell of that map run again
	KindActivations                 // Model, Input, Name: every hook's activations as a cache file
	KindAttention                   // Of, Token: where a token attends in a recent analysis
	KindDerive                      // Model, Of: the DLA and maps of an analysis asked with DeriveNext
)

// Request is one message from the page to the engine.
type Request struct {
	ID   int // answered in Response.ID and Progress.ID; Cancel names it
	Kind Kind

	// KindLoad, KindDemo; Name and Data also name and hold the file of
	// KindDecode and KindLens, and Name the image of KindActivations.
	// In the browser Data may travel beside the message as a Blob (a
	// picked File: the worker reads it, the page never does).
	Name string
	Data []byte
	Opt  session.LoadOptions

	// Model is the engine's number of a loaded model (Response.Model).
	Model int
	// KindAnalyze: the picture, as pixels, when the page has no prepared
	// Input for this model yet (a new image or preset).
	Image *Picture
	Input *session.Input
	// Preset is the page's current preprocessing for the model.
	Preset   preprocess.Preset
	Settings session.Settings // its Lens is never sent: see LensID
	// LensID numbers the tuned lens the page loaded with KindLens (0:
	// none).
	LensID   int
	AllowGPU bool
	// Explain asks for the explanation maps with the analysis (the page
	// skips them above AutoExplainParams until the user asks).
	Explain bool
	// DLA asks for the direct logit attribution with the analysis.
	DLA bool
	// DeriveNext defers the DLA and maps asked: the engine keeps the
	// analysis's forward, and a KindDerive naming the analysis (Of)
	// computes them from it, while the page draws the analysis.
	DeriveNext bool

	// KindMemories.
	Memories []session.MemoryKey
	// KindPatch; KindPatchCell names the map by its request's ID and the
	// cell by block and column (head or token).
	Patch   session.PatchOptions
	PatchID int
	Cell    [2]int

	// Token is, for KindAnalyze, the token whose attention rows come with
	// the answer (Result.Attention; the page's selected token), and for
	// KindAttention the token asked. Of names the analysis of
	// KindAttention and KindDerive by its request's ID.
	Token int
	Of    int
}

// Picture is a decoded image's pixels.
type Picture struct {
	Name   string
	W, H   int
	Stride int
	Pix    []uint8 // NRGBA
}

// PictureOf converts any decoded image to what a request carries.
func PictureOf(name string, img image.Image) *Picture {
	n, ok := img.(*image.NRGBA)
	if !ok || n.Rect.Min != (image.Point{}) {
		b := img.Bounds()
		n = image.NewNRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
		draw.Draw(n, n.Rect, img, b.Min, draw.Src)
	}
	return &Picture{Name: name, W: n.Rect.Dx(), H: n.Rect.Dy(), Stride: n.Stride, Pix: n.Pix}
}

// Image is the picture as an image.
func (p *Picture) Image() (*session.Image, error) {
	if p.W <= 0 || p.H <= 0 || p.Stride < 4*p.W || len(p.Pix) < p.Stride*(p.H-1)+4*p.W {
		return nil, fmt.Errorf("%s: malformed picture (%d×%d, %d bytes)", p.Name, p.W, p.H, len(p.Pix))
	}
	return &session.Image{Name: p.Name, Src: &image.NRGBA{Pix: p.Pix, Stride: p.Stride, Rect: image.Rect(0, 0, p.W, p.H)}}, nil
}

// Response answers one Request.
type Response struct {
	ID  int
	Err string // "" on success
	// HeadsDim and HeadChoices, when the checkpoint does not say its head
	// count (session.HeadsQuestion), so the page can ask.
	HeadsDim    int
	HeadChoices []int
	Canceled    bool

	// KindLoad, KindDemo, KindRandom: the model's number and the model
	// as the page holds it (session.Model.Weightless: the weights stay in
	// the engine, which computes everything that reads them).
	Model  int
	Loaded *session.Model
	Took   time.Duration

	// KindAnalyze.
	Result *Result
	// KindAnalyze with Explain, KindExplain, KindDerive.
	Explain *Explanation
	// KindDerive (KindAnalyze: in Result).
	DLA *DLA
	// KindSamples, KindDecode.
	Pictures []*Picture
	// KindMemories: the classes of each asked memory, in order.
	Classes [][]int32
	// KindPatch, KindPatchCell.
	Patch     *session.PatchMap
	PatchCell *session.PatchCell
	// KindActivations: the file. In the browser it travels beside the
	// message as a Blob, which the page saves without reading.
	Data []byte
	// KindAttention: Token's rows in the analysis's Base and After runs
	// (see Result.Attention).
	Attention []*session.AttentionRows
}

// Result is an analysis as computed in the engine, without what the page
// already holds (the model, the image, the settings).
type Result struct {
	Input *session.Input
	// The runs' traces come without their memory coefficients (FC1 and
	// Heads: 36 MB of a B/16's 60): the memories view reads the runs' top
	// memories, sent beside them.
	Base, After, Tuned, TunedAfter *lens.Result
	BaseMemories, AfterMemories    *session.MemoryTop
	Backend, TapsBackend           string
	Elapsed                        time.Duration
	// BackendName and BackendNote say which backend ran, for people.
	BackendName, BackendNote string
	DLA                      *DLA
	// The runs' traces come without their attention maps either (22 MB of
	// a B/16's 24, and the square of the sequence's length): the engine
	// keeps them for KindAttention, and Attention holds the rows of
	// Request.Token in Base and After (nil where the token was dropped or
	// there is no After run).
	Attention []*session.AttentionRows
}

// Explanation is the explanation maps of a target, or why there are none.
type Explanation struct {
	Maps *explain.Maps
	// Images are what the view draws, as PNG data: URIs: the input, then
	// ours and Chefer et al.'s maps over it, ExplainSize pixels wide.
	Images  []string
	Err     string
	Elapsed time.Duration
}

// ExplainSize is the width of the explanation's pictures.
const ExplainSize = 120

// DLA is the direct logit attribution of the analysis's target.
type DLA struct {
	Result  *dla.Result
	Err     string
	Elapsed time.Duration
}

// Progress reports a long request's advance: run Step of Steps (the
// unperturbed image, the intervention, the tuned lens), block Block of
// Blocks of it (0 when the backend does not run block by block). A
// patching map (KindPatch) reports cells: Step of Steps done, no blocks.
type Progress struct {
	ID           int
	Step, Steps  int
	Block, Depth int
}

// Fraction is how much of the analysis is done, 0 to 1, counting each run
// (Steps) as its blocks.
func (p Progress) Fraction() float64 {
	if p.Steps < 1 || p.Depth < 1 {
		return 0
	}
	f := (float64(p.Step-1) + float64(p.Block)/float64(p.Depth)) / float64(p.Steps)
	return min(1, max(0, f))
}

// Error is a failed request on the page's side, keeping what the page
// reacts to.
func (r *Response) Error() error {
	switch {
	case r.Err == "":
		return nil
	case r.Canceled:
		return ErrCanceled
	case r.HeadsDim > 0:
		return &checkpoint.HeadsUnknownError{Dim: r.HeadsDim}
	}
	return errors.New(r.Err)
}

// ErrCanceled is the answer to a cancelled request.
var ErrCanceled = errors.New("analysis cancelled")

// AutoExplainParams is the model size up to which the explanation maps are
// computed with every analysis; beyond it a backward pass in WebAssembly
// takes seconds, so it waits for a click.
const AutoExplainParams = 5_000_000

// Engine holds the loaded models and their backends. Handle serves one
// request at a time; Cancel may be called at any time.
type Engine struct {
	// Demo holds the demo model (package public's layout).
	Demo fs.FS
	// OpenGPU uploads a model's weights to WebGPU or says why the CPU runs.
	OpenGPU func(*vit.Model) (lens.Backend, string)
	// Yield runs between blocks of the CPU forward: in the browser it hands
	// the event loop a turn, so a cancel message (the worker) or a repaint
	// (the page) gets through. Nil does nothing.
	Yield func()
	// Mark hears the end of each stage of an analysis: "lens" (the runs,
	// their readouts and taps), "dla", "explain". The worker puts them on
	// the page's performance timeline, for the browser tests' breakdown of
	// where an analysis's time goes. Nil does nothing.
	Mark func(stage string)

	mu     sync.Mutex
	models map[int]*slot
	next   int
	lensID int
	lens   *lens.Translators // the page's tuned lens (LensID), for its model
	// patch is the last patching map (KindPatch request patchID, on model
	// patchModel), kept for its cells (KindPatchCell).
	patch      *session.PatchMap
	patchID    int
	patchModel int
	// attention is the attention maps of the latest analyses, newest
	// first (KindAttention): the page's and, when comparing, the second
	// model's.
	attention []keptAttention
	// recorded is the forward of the last analysis asked with DeriveNext,
	// until its KindDerive takes it.
	recorded *recordedForward

	cancelMu sync.Mutex
	canceled map[int]bool // the IDs of requests to stop
	// earlyDemo and earlySamples are what Preload is loading, until a
	// request takes them.
	earlyDemo    *early[*session.Model]
	earlySamples *early[[]*session.Image]
}

// early is work started before it is asked for.
type early[T any] struct {
	done chan struct{}
	v    T
	err  error
	took time.Duration
}

func startEarly[T any](f func() (T, error)) *early[T] {
	x := &early[T]{done: make(chan struct{})}
	go func() {
		start := time.Now()
		x.v, x.err = f()
		x.took = time.Since(start)
		close(x.done)
	}()
	return x
}

// Preload starts loading the demo model (no options) and decoding the
// samples in the background, before anyone asks: the page asks for both
// first thing, and its worker calls this as it starts, so the fetching and
// parsing run while the page's own start-up does (in the worker, the
// requests for the files are all in flight at once). The first request
// for the demo without options, and the first for the samples, take them;
// later ones load their own.
func (e *Engine) Preload() {
	if e.Demo == nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.earlyDemo = startEarly(func() (*session.Model, error) { return session.LoadDemoWith(e.Demo, session.LoadOptions{}) })
	e.earlySamples = startEarly(func() ([]*session.Image, error) { return session.Samples(e.Demo) })
}

type slot struct {
	m *session.Model
	w worker
}

// Cancel asks the request with this ID to stop at the next block (or
// patching cell), or not to start if it is still waiting.
func (e *Engine) Cancel(id int) {
	e.cancelMu.Lock()
	defer e.cancelMu.Unlock()
	if e.canceled == nil {
		e.canceled = map[int]bool{}
	}
	e.canceled[id] = true
}

// stopped reports whether request id was cancelled.
func (e *Engine) stopped(id int) bool {
	e.cancelMu.Lock()
	defer e.cancelMu.Unlock()
	return id != 0 && e.canceled[id]
}

// forget drops a finished request's cancel, if any.
func (e *Engine) forget(id int) {
	e.cancelMu.Lock()
	defer e.cancelMu.Unlock()
	delete(e.canceled, id)
}

// Handle serves a request; progress (may be nil) hears about long ones.
func (e *Engine) Handle(req *Request, progress func(Progress)) *Response {
	e.mu.Lock()
	defer e.mu.Unlock()
	defer e.forget(req.ID)
	if e.models == nil {
		e.models = map[int]*slot{}
	}
	resp := &Response{ID: req.ID}
	var err error
	switch req.Kind {
	case KindLoad, KindDemo:
		err = e.load(req, resp)
	case KindRandom:
		var s *slot
		if s, err = e.slot(req.Model); err == nil {
			var r *session.Model
			if r, err = s.m.RandomInit(session.RandomSeed); err == nil {
				e.add(r, resp)
			}
		}
	case KindAnalyze:
		err = e.analyze(req, resp, progress)
	case KindExplain:
		var s *slot
		if s, err = e.slot(req.Model); err != nil {
			break
		}
		if req.Input != nil {
			resp.Explain = explanation(s.m, req.Input, req.Settings.Target, nil)
		} else {
			err = errors.New("explain: no input")
		}
	case KindSamples:
		if e.Demo == nil {
			err = errors.New("engine: no demo files")
			break
		}
		var imgs []*session.Image
		if early := e.earlySamples; early != nil {
			e.earlySamples = nil
			<-early.done
			imgs, err = early.v, early.err
		} else {
			imgs, err = session.Samples(e.Demo)
		}
		if err == nil {
			for _, img := range imgs {
				resp.Pictures = append(resp.Pictures, PictureOf(img.Name, img.Src))
			}
		}
	case KindDecode:
		var img *session.Image
		if img, err = session.DecodeImage(req.Name, req.Data); err == nil {
			resp.Pictures = []*Picture{PictureOf(img.Name, img.Src)}
		}
	case KindMemories:
		var s *slot
		if s, err = e.slot(req.Model); err == nil {
			resp.Classes, err = s.m.ValueClasses(req.Memories)
		}
	case KindLens:
		err = e.readLens(req)
	case KindPatch:
		err = e.patchMap(req, resp, progress)
	case KindAttention:
		resp.Attention, err = e.attentionOf(req.Of, req.Token)
	case KindDerive:
		r := e.recorded
		if r == nil || r.id != req.Of || r.model != req.Model {
			err = errors.New("the forward of this analysis is no longer kept: analyse the image again")
			break
		}
		e.recorded = nil
		var s *slot
		if s, err = e.slot(req.Model); err == nil {
			resp.DLA, resp.Explain = e.derive(s.m, r.in, r.target, r.rec, r.dla, r.maps)
		}
	case KindPatchCell:
		if e.patch == nil || e.patchID != req.PatchID || e.patchModel != req.Model {
			err = errors.New("patching: that map is gone (a newer one was made): run it again")
			break
		}
		var c session.PatchCell
		if c, err = e.patch.Cell(req.Cell[0], req.Cell[1]); err == nil {
			resp.PatchCell = &c
		}
	case KindActivations:
		var s *slot
		if s, err = e.slot(req.Model); err == nil {
			if req.Input == nil {
				err = errors.New("activations: no input")
				break
			}
			resp.Data, err = session.ActivationsFile(s.m.Model, req.Input.Pixels, req.Name)
		}
	case KindRelease:
		if s := e.models[req.Model]; s != nil {
			s.w.close()
			delete(e.models, req.Model)
		}
		if e.patchModel == req.Model {
			e.patch = nil
		}
		if e.recorded != nil && e.recorded.model == req.Model {
			e.recorded = nil
		}
		e.attention = slices.DeleteFunc(e.attention, func(k keptAttention) bool { return k.model == req.Model })
	default:
		err = fmt.Errorf("engine: unknown request kind %d", req.Kind)
	}
	if err != nil {
		// A failed request answers nothing but the error: whatever a kind
		// had filled in before it failed is dropped, new fields included.
		resp = &Response{ID: req.ID, Err: err.Error(), Canceled: errors.Is(err, ErrCanceled)}
		if dim, choices, ok := session.HeadsQuestion(err); ok {
			resp.HeadsDim, resp.HeadChoices = dim, choices
		}
	}
	return resp
}

func (e *Engine) slot(id int) (*slot, error) {
	if s := e.models[id]; s != nil {
		return s, nil
	}
	return nil, fmt.Errorf("engine: no model %d (reload the page)", id)
}

func (e *Engine) add(m *session.Model, resp *Response) {
	e.next++
	e.models[e.next] = &slot{m: m}
	resp.Model, resp.Loaded = e.next, m.Weightless()
}

// readLens reads a tuned lens's file for a model; analyses name it by its
// LensID.
func (e *Engine) readLens(req *Request) error {
	s, err := e.slot(req.Model)
	if err != nil {
		return err
	}
	if req.LensID == 0 {
		return errors.New("tuned lens: no number")
	}
	t, err := lens.ReadTranslators(req.Name, req.Data, s.m.Model.Config)
	if err != nil {
		return fmt.Errorf("tuned lens: %w", err)
	}
	e.lensID, e.lens = req.LensID, t
	return nil
}

// patchYieldEvery is how long a patching map computes between turns of the
// event loop (e.Yield): a cancel, or in the page a repaint, gets through.
// A variable so that tests can report every cell: with a time-based
// throttle, how many reports a map makes depends on the machine's speed.
var patchYieldEvery = 40 * time.Millisecond

// patchMap makes a patching map of the corrupted picture (req.Image) from
// the clean input, cell by cell, reporting the cells done and stopping at
// the next cell when cancelled. The map is kept for its cells.
func (e *Engine) patchMap(req *Request, resp *Response, progress func(Progress)) error {
	s, err := e.slot(req.Model)
	if err != nil {
		return err
	}
	if req.Input == nil || req.Image == nil {
		return errors.New("patching: want the clean input and the corrupted image")
	}
	m := s.m
	m.Preset = req.Preset // the page's choice (the preset menu)
	img, err := req.Image.Image()
	if err != nil {
		return err
	}
	in, err := m.Prepare(img)
	if err != nil {
		return err
	}
	if e.stopped(req.ID) {
		return ErrCanceled
	}
	yielded := time.Now()
	pm, err := session.Patch(m.Model, req.Input.Pixels, in.Pixels, req.Patch, func(done, total int) bool {
		if time.Since(yielded) < patchYieldEvery && done < total {
			return true
		}
		if progress != nil {
			progress(Progress{ID: req.ID, Step: done, Steps: total})
		}
		if e.Yield != nil {
			e.Yield()
		}
		yielded = time.Now()
		return !e.stopped(req.ID)
	})
	if errors.Is(err, session.ErrPatchStopped) {
		return ErrCanceled
	}
	if err != nil {
		return err
	}
	e.patch, e.patchID, e.patchModel = pm, req.ID, req.Model
	resp.Patch = pm
	return nil
}

// load parses a checkpoint (or the demo) as the page used to: a Hugging
// Face config.json beside it names the classes.
func (e *Engine) load(req *Request, resp *Response) error {
	start := time.Now()
	var m *session.Model
	var err error
	if req.Kind == KindDemo {
		if e.Demo == nil {
			return errors.New("engine: no demo files")
		}
		if early := e.earlyDemo; early != nil && reflect.ValueOf(req.Opt).IsZero() {
			e.earlyDemo = nil
			<-early.done
			if early.err != nil {
				return early.err
			}
			resp.Took = early.took
			e.add(early.v, resp)
			return nil
		}
		m, err = session.LoadDemoWith(e.Demo, req.Opt)
	} else {
		m, err = session.LoadModel(req.Name, req.Data, req.Opt)
		if err == nil && req.Opt.ConfigJSON != nil {
			if cerr := m.SetClasses("config.json", req.Opt.ConfigJSON); cerr != nil && m.Model.Config.Classes == 1000 {
				_ = m.UseImageNetClasses()
			}
		}
	}
	if err != nil {
		return err
	}
	resp.Took = time.Since(start)
	e.add(m, resp)
	return nil
}

func (e *Engine) analyze(req *Request, resp *Response, progress func(Progress)) error {
	s, err := e.slot(req.Model)
	if err != nil {
		return err
	}
	m := s.m
	m.Preset = req.Preset // the page's choice (the preset menu)
	settings := req.Settings
	settings.Lens = nil
	if req.LensID != 0 {
		if req.LensID != e.lensID {
			return fmt.Errorf("tuned lens %d: not read (KindLens)", req.LensID)
		}
		settings.Lens = e.lens
	}
	in := req.Input
	var img *session.Image
	if in == nil {
		if req.Image == nil {
			return errors.New("engine: analysis without an image")
		}
		if img, err = req.Image.Image(); err != nil {
			return err
		}
		if in, err = m.Prepare(img); err != nil {
			return err
		}
	}
	if img == nil {
		img = &session.Image{Name: "image"}
	}
	if e.stopped(req.ID) {
		return ErrCanceled
	}
	steps, step, depth := settings.Runs(), 1, m.Model.Config.Depth
	report := func(block int) {
		if progress != nil {
			progress(Progress{ID: req.ID, Step: step, Steps: steps, Block: block, Depth: depth})
		}
	}
	report(0)
	pause := func(block int) error {
		if block < 0 {
			step++
			block = 0
		} else {
			block++
		}
		report(block)
		if e.Yield != nil {
			e.Yield()
		}
		if e.stopped(req.ID) {
			return ErrCanceled
		}
		return nil
	}
	withMaps := req.Explain && m.Model.Config.ClassToken
	// DLA and the maps read the lens's forward instead of running their own.
	settings.Record = withMaps || req.DLA
	a, err := s.w.analyze(m, img, in, settings, req.AllowGPU, e.OpenGPU, pause)
	if err != nil {
		return err
	}
	e.mark("lens")
	rec := a.Base.Activations
	a.Base.Activations = nil // not for the page: tens of megabytes
	e.keepAttention(req.ID, req.Model, a.Base, a.After)
	rows, _ := e.attentionOf(req.ID, req.Token) // none: the page asks and hears why
	r := &Result{Input: a.Input, Base: forPage(a.Base), After: forPage(a.After), Attention: rows,
		Tuned: a.Tuned, TunedAfter: a.TunedAfter, BaseMemories: a.BaseMemories, AfterMemories: a.AfterMemories,
		Backend: a.Backend, TapsBackend: a.TapsBackend, Elapsed: a.Elapsed, BackendName: s.w.name, BackendNote: s.w.note}
	// The tuned runs share their unperturbed twin's forward (Analyze links
	// the traces): sent once, linked again by the page.
	if r.Tuned != nil {
		c := *r.Tuned
		c.Trace = nil
		r.Tuned = &c
	}
	if r.TunedAfter != nil {
		c := *r.TunedAfter
		c.Trace = nil
		r.TunedAfter = &c
	}
	resp.Result = r
	target := a.Base.Target
	if req.DeriveNext {
		if req.DLA || withMaps {
			e.recorded = &recordedForward{id: req.ID, model: req.Model, in: in, target: target, rec: rec,
				dla: req.DLA, maps: withMaps}
		}
		return nil
	}
	r.DLA, resp.Explain = e.derive(m, in, target, rec, req.DLA, withMaps)
	return nil
}

// derive computes the DLA and the explanation maps of in for target, those
// asked, from rec (the analysis's recorded forward, on the CPU) when not
// nil, else each with a forward of its own.
func (e *Engine) derive(m *session.Model, in *session.Input, target int, rec *vit.Activations, withDLA, withMaps bool) (*DLA, *Explanation) {
	var d *DLA
	if withDLA {
		start := time.Now()
		d = &DLA{}
		var err error
		if rec != nil {
			d.Result, err = dla.FromActivations(m.Model, rec, dla.Options{Target: target})
		} else {
			d.Result, err = dla.Compute(m.Model, in.Pixels, dla.Options{Target: target})
		}
		if err != nil {
			d.Err = err.Error()
		}
		d.Elapsed = time.Since(start)
		e.mark("dla")
	}
	var x *Explanation
	if withMaps {
		x = explanation(m, in, target, rec)
		e.mark("explain")
	}
	return d, x
}

// recordedForward is an analysis's forward (nil where the backend kept
// none: each derivation then runs its own) kept for the derivations it
// was asked with (Request.DeriveNext).
type recordedForward struct {
	id, model, target int
	in                *session.Input
	rec               *vit.Activations
	dla, maps         bool
}

// mark tells Mark, if any, that a stage ended.
func (e *Engine) mark(stage string) {
	if e.Mark != nil {
		e.Mark(stage)
	}
}

// forPage is r for the page: a copy whose trace lacks the memory
// coefficients, which the page reads summarised (Result's BaseMemories and
// AfterMemories), and the attention maps, which it reads a token at a time
// (Result.Attention, KindAttention).
func forPage(r *lens.Result) *lens.Result {
	if r == nil || r.Trace == nil {
		return r
	}
	c, tr := *r, *r.Trace
	tr.FC1, tr.Heads, tr.AttnProbs = nil, nil, nil
	c.Trace = &tr
	return &c
}

// keptAttention is an analysis's attention maps, by run (Base, After).
type keptAttention struct {
	id, model int
	runs      []*lens.Result // Tokens and Trace.AttnProbs only; nil: no such run
}

// keptAnalyses is how many analyses' attention maps the engine keeps: the
// page's and the second model's when comparing.
const keptAnalyses = 2

// keepAttention keeps the attention maps of analysis id's runs (Handle
// holds e.mu).
func (e *Engine) keepAttention(id, model int, runs ...*lens.Result) {
	k := keptAttention{id: id, model: model}
	for _, r := range runs {
		var kept *lens.Result
		if r != nil && r.Trace != nil && r.Trace.AttnProbs != nil {
			kept = &lens.Result{Tokens: r.Tokens, Trace: &vit.Trace{AttnProbs: r.Trace.AttnProbs}}
		}
		k.runs = append(k.runs, kept)
	}
	e.attention = append([]keptAttention{k}, e.attention[:min(len(e.attention), keptAnalyses-1)]...)
}

// attentionOf is token's rows in each run of analysis id: nil for a run
// without maps or without the token (dropped).
func (e *Engine) attentionOf(id, token int) ([]*session.AttentionRows, error) {
	var k *keptAttention
	for i := range e.attention {
		if e.attention[i].id == id {
			k = &e.attention[i]
		}
	}
	if k == nil {
		return nil, errors.New("the attention maps of this analysis are no longer kept: analyse the image again")
	}
	out := make([]*session.AttentionRows, len(k.runs))
	found := false
	for i, r := range k.runs {
		if r != nil && session.Position(r, token) >= 0 {
			rows, err := session.AttentionOf(r, token)
			if err != nil {
				return nil, err
			}
			out[i], found = rows, true
		}
	}
	if !found {
		return nil, fmt.Errorf("token %d is in no run of this analysis", token)
	}
	return out, nil
}

// explanation computes the maps of in for target, from rec (the recorded
// forward of the analysis, on the CPU) when not nil, else with a forward of
// their own.
func explanation(m *session.Model, in *session.Input, target int, rec *vit.Activations) *Explanation {
	start := time.Now()
	x := &Explanation{}
	var err error
	if rec != nil {
		x.Maps, err = explain.MapRecorded(m.Model, rec, target, explain.Options{})
	} else {
		x.Maps, err = explain.Map(m.Model, in.Pixels, target, explain.Options{})
	}
	if err != nil {
		x.Err = err.Error()
	}
	x.Elapsed = time.Since(start)
	if mp := x.Maps; mp != nil {
		x.Images = []string{
			figure.PNGDataURI(explain.Picture(in.Pixels, ExplainSize)),
			figure.PNGDataURI(explain.Overlay(in.Pixels, mp.Ours, mp.Grid, ExplainSize)),
			figure.PNGDataURI(explain.Overlay(in.Pixels, mp.Chefer, mp.Grid, ExplainSize)),
		}
	}
	return x
}

// Analysis is a Result as the views read it, linked to what the page holds.
func (r *Result) Analysis(seq int, m *session.Model, img *session.Image, s session.Settings) *session.Analysis {
	a := &session.Analysis{Seq: seq, Model: m, Image: img, Input: r.Input, Settings: s, Base: r.Base, After: r.After,
		Tuned: r.Tuned, TunedAfter: r.TunedAfter, BaseMemories: r.BaseMemories, AfterMemories: r.AfterMemories,
		Backend: r.Backend, TapsBackend: r.TapsBackend, Elapsed: r.Elapsed}
	if a.Tuned != nil && a.Base != nil {
		a.Tuned.Trace = a.Base.Trace
	}
	if a.TunedAfter != nil && a.After != nil {
		a.TunedAfter.Trace = a.After.Trace
	}
	return a
}

// worker holds the backends of one model. The WebGPU one is kept while the
// CPU is chosen, so switching back neither compiles nor uploads anything.
type worker struct {
	model      *session.Model
	cpu        *lens.CPU
	gpu        lens.Backend // nil: not tried yet, or unavailable (gpuNote)
	gpuTried   bool
	gpuNote    string
	name, note string
}

func (w *worker) close() {
	if w.gpu != nil {
		w.gpu.Close()
		w.gpu = nil
	}
}

func (w *worker) analyze(m *session.Model, img *session.Image, in *session.Input, s session.Settings, allowGPU bool,
	openGPU func(*vit.Model) (lens.Backend, string), pause func(int) error) (*session.Analysis, error) {
	if w.model != m {
		w.close()
		w.model, w.cpu, w.gpuTried = m, lens.NewCPU(m.Model), false
	}
	be, note := lens.Backend(w.cpu), "WebGPU off (chosen)"
	if allowGPU {
		if !w.gpuTried {
			if openGPU != nil {
				w.gpu, w.gpuNote = openGPU(m.Model)
			} else {
				w.gpuNote = "WebGPU unavailable here"
			}
			w.gpuTried = true
		}
		if w.gpu != nil {
			be = w.gpu
		}
		note = w.gpuNote
	}
	w.name, w.note = BackendLabel(be), note
	var fallback lens.Backend
	if be != lens.Backend(w.cpu) {
		fallback = w.cpu
	}
	a, err := session.Analyze(be, fallback, m, img, in, s, pause)
	if err != nil && fallback != nil && !errors.Is(err, ErrCanceled) {
		// The GPU failed at run time (lost device, a limit): stay on the CPU
		// for this model, and say so.
		w.gpu.Close()
		w.gpu, w.gpuNote = nil, fmt.Sprintf("WebGPU failed, using the CPU: %v", err)
		w.name, w.note = BackendLabel(w.cpu), w.gpuNote
		a, err = session.Analyze(w.cpu, nil, m, img, in, s, pause)
	}
	return a, err
}

// BackendLabel names a backend for people.
func BackendLabel(be lens.Backend) string {
	name := be.Name()
	if strings.HasPrefix(name, "cpu") {
		if vit.GEMMKernel() == "simd" { // vit/gemm_js.go: the matmul in WebAssembly SIMD
			kind := "WebAssembly SIMD"
			if vit.RelaxedSIMD() { // its fused multiply-add
				kind += " with FMA"
			}
			if n := vit.GEMMThreads(); n > 1 {
				return fmt.Sprintf("CPU (%s, %d threads)", kind, n)
			}
			return "CPU (" + kind + ")"
		}
		return "CPU (WebAssembly)"
	}
	return strings.Replace(name, "webgpu:", "WebGPU ·", 1)
}
