package app

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"vitlens/app/engine"
	"vitlens/app/session"
)

// remoteEngine is the engine in its worker: requests and responses travel
// encoded (engine.Encode), as transferable buffers. A request's Data may
// travel beside it as a Blob (in), a response's comes back as one (out).
type remoteEngine interface {
	call(id int, req []byte, in app.Value, progress func(engine.Progress)) (resp []byte, out app.Value, err error)
	cancel(id int)
}

// errWorkerFailed says the engine's worker stopped or never started.
var errWorkerFailed = errors.New("the engine's worker failed")

// engineClient sends the page's requests to the engine: to its worker, or,
// where the browser has none (or it failed to start), to the same engine
// in the page, which then yields between blocks so the page still paints.
// The page's job goroutine calls it, and the patching card's goroutine;
// the engine serves one request at a time. cancel may come from any.
type engineClient struct {
	remote remoteEngine // nil: in-page
	local  *engine.Engine

	mu      sync.Mutex
	ids     map[*session.Model]int // the engine's number of each model the page holds
	loaded  bool                   // a model reached the engine: its worker cannot be swapped any more
	next    atomic.Int64
	running atomic.Int64 // the analysis in flight, for cancel
	serving sync.Mutex   // held while the in-page engine serves a request
}

func newEngineClient() *engineClient {
	return &engineClient{remote: startWorker(), ids: map[*session.Model]int{},
		local: &engine.Engine{Demo: demoFiles, OpenGPU: openGPU, Yield: pause}}
}

// where says where the engine runs ("worker" or "page"), for the tests.
func (c *engineClient) where() string {
	if c.remote != nil {
		return "worker"
	}
	return "page"
}

// do sends one request and waits for its answer; see doBlob.
func (c *engineClient) do(req *engine.Request, progress func(engine.Progress)) *engine.Response {
	resp, _ := c.doBlob(req, nil, progress)
	return resp
}

// doBlob sends one request and waits for its answer. in, when not nil, is
// a Blob (a picked File, a download) holding the request's Data: the worker
// reads it itself, so a model's bytes never enter the page's memory. The
// response's Data comes back as a Blob (out), which the page saves without
// reading it.
func (c *engineClient) doBlob(req *engine.Request, in app.Value, progress func(engine.Progress)) (*engine.Response, app.Value) {
	if req.ID == 0 {
		req.ID = c.newID()
	}
	if c.remote == nil {
		return c.inPage(req, in, progress)
	}
	start := sinceNavigation()
	data, err := engine.Encode(req)
	measure(fmt.Sprintf("vl-encode-%d", req.Kind), start)
	if err != nil {
		return &engine.Response{ID: req.ID, Err: err.Error()}, nil
	}
	raw, out, err := c.remote.call(req.ID, data, in, progress)
	if errors.Is(err, errWorkerFailed) {
		c.mu.Lock()
		first := !c.loaded
		c.mu.Unlock()
		if first {
			// It never held a model: carry on in the page.
			c.remote = nil
			return c.inPage(req, in, progress)
		}
		return &engine.Response{ID: req.ID, Err: err.Error() + ": reload the page"}, nil
	}
	if err != nil {
		return &engine.Response{ID: req.ID, Err: err.Error()}, nil
	}
	resp := new(engine.Response)
	start = sinceNavigation()
	err = engine.Decode(raw, resp)
	measure(fmt.Sprintf("vl-decode-%d", req.Kind), start)
	if err != nil {
		return &engine.Response{ID: req.ID, Err: err.Error()}, nil
	}
	return resp, out
}

// inPage serves a request with the page's own engine: what the worker does
// with a message, without the copies.
func (c *engineClient) inPage(req *engine.Request, in app.Value, progress func(engine.Progress)) (*engine.Response, app.Value) {
	// One request at a time, as in the worker: two goroutines may fall
	// back here together when the worker fails to start (see demo).
	c.serving.Lock()
	defer c.serving.Unlock()
	if in != nil {
		data, err := readBlob(req.Name, in)
		if err != nil {
			return &engine.Response{ID: req.ID, Err: err.Error()}, nil
		}
		req.Data = data
	}
	resp := c.local.Handle(req, progress)
	var out app.Value
	if resp.Data != nil {
		out, resp.Data = blobOf(resp.Data, ""), nil
	}
	return resp, out
}

// model loads a model through req (KindLoad, KindDemo, KindRandom), the
// file of KindLoad in file.
func (c *engineClient) model(req *engine.Request, file app.Value) (*session.Model, time.Duration, error) {
	resp, _ := c.doBlob(req, file, nil)
	if err := resp.Error(); err != nil {
		return nil, 0, err
	}
	c.mu.Lock()
	c.ids[resp.Loaded] = resp.Model
	c.loaded = true
	c.mu.Unlock()
	return resp.Loaded, resp.Took, nil
}

// loadModel parses a checkpoint, which the engine reads from file (a Blob).
func (c *engineClient) loadModel(name string, file app.Value, opt session.LoadOptions) (*session.Model, time.Duration, error) {
	return c.model(&engine.Request{Kind: engine.KindLoad, Name: name, Opt: opt}, file)
}

func (c *engineClient) loadDemo(opt session.LoadOptions) (*session.Model, error) {
	m, _, err := c.model(&engine.Request{Kind: engine.KindDemo, Opt: opt}, nil)
	return m, err
}

// demo asks for the demo model and its samples, both at once to the
// worker: it answers them one after the other, so the page waits for one
// round trip, not two (the in-page engine serves them in turn).
func (c *engineClient) demo() (m *session.Model, err error, samples []*session.Image, samplesErr error) {
	if c.remote == nil {
		m, err = c.loadDemo(session.LoadOptions{})
		samples, samplesErr = c.samples()
		return m, err, samples, samplesErr
	}
	got := make(chan struct{})
	go func() {
		defer close(got)
		samples, samplesErr = c.samples()
	}()
	m, err = c.loadDemo(session.LoadOptions{})
	<-got
	return m, err, samples, samplesErr
}

func (c *engineClient) randomInit(m *session.Model) (*session.Model, error) {
	r, _, err := c.model(&engine.Request{Kind: engine.KindRandom, Model: c.id(m)}, nil)
	return r, err
}

func (c *engineClient) id(m *session.Model) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ids[m]
}

// pictures asks for decoded images (KindSamples, KindDecode, its file in
// a Blob): the page wraps their pixels without decoding anything.
func (c *engineClient) pictures(req *engine.Request, file app.Value) ([]*session.Image, error) {
	resp, _ := c.doBlob(req, file, nil)
	if err := resp.Error(); err != nil {
		return nil, err
	}
	out := make([]*session.Image, len(resp.Pictures))
	for i, p := range resp.Pictures {
		img, err := p.Image()
		if err != nil {
			return nil, err
		}
		out[i] = img
	}
	return out, nil
}

func (c *engineClient) samples() ([]*session.Image, error) {
	return c.pictures(&engine.Request{Kind: engine.KindSamples}, nil)
}

// decode decodes an image file (a Blob) in the engine.
func (c *engineClient) decode(name string, file app.Value) (*session.Image, error) {
	imgs, err := c.pictures(&engine.Request{Kind: engine.KindDecode, Name: name}, file)
	if err != nil {
		return nil, err
	}
	return imgs[0], nil
}

// release lets the engine forget a model the page no longer shows.
func (c *engineClient) release(m *session.Model) {
	if id := c.id(m); id != 0 {
		c.do(&engine.Request{Kind: engine.KindRelease, Model: id}, nil)
		c.mu.Lock()
		delete(c.ids, m)
		c.mu.Unlock()
	}
}

// tunedLens is the page's tuned lens: the engine read its file (readLens)
// and knows it by its number.
type tunedLens struct{ id int }

// readLens has the engine read a tuned lens's file (a Blob) for m and
// check it against the model; analyses then name it by id.
func (c *engineClient) readLens(m *session.Model, id int, name string, file app.Value) error {
	resp, _ := c.doBlob(&engine.Request{Kind: engine.KindLens, Model: c.id(m), LensID: id, Name: name}, file, nil)
	return resp.Error()
}

// analysis is what one analysis request brings back.
type analysis struct {
	*session.Analysis
	explain *engine.Explanation // nil when not asked; empty while computing
	dla     *engine.DLA
	// later: the DLA and maps asked follow the answer (derived); dla is
	// nil and explain empty until they come.
	later bool
	// attention is the rows of token in the runs (Base, After).
	attention     []*session.AttentionRows
	token         int
	backend, note string
}

// analyze runs an analysis of img (in: its prepared input for m, or nil)
// in the engine.
func (c *engineClient) analyze(seq int, m *session.Model, img *session.Image, in *session.Input, s session.Settings,
	tl *tunedLens, token int, allowGPU, derive bool, progress func(engine.Progress)) (*analysis, error) {
	req := &engine.Request{Kind: engine.KindAnalyze, Model: c.id(m), Input: in, Preset: m.Preset, Settings: s, Token: max(token, 0),
		AllowGPU: allowGPU, DLA: derive, Explain: derive && (m.NumParams() <= engine.AutoExplainParams || explainAlways()),
		DeriveNext: derive}
	req.Settings.Lens = nil
	if in == nil {
		req.Image = engine.PictureOf(img.Name, img.Src)
	}
	if tl != nil {
		req.LensID = tl.id
	}
	// cancel reads the number of the analysis in flight.
	req.ID = c.newID()
	c.running.Store(int64(req.ID))
	resp := c.do(req, progress)
	c.running.CompareAndSwap(int64(req.ID), 0)
	if err := resp.Error(); err != nil {
		return nil, err
	}
	r := resp.Result
	a := r.Analysis(seq, m, img, s)
	a.EngineID = req.ID
	out := &analysis{Analysis: a, explain: resp.Explain, dla: r.DLA, attention: r.Attention, token: req.Token,
		backend: r.BackendName, note: r.BackendNote}
	if req.DeriveNext {
		out.later = true // see derived
		if req.Explain && m.Model.Config.ClassToken {
			out.explain = &engine.Explanation{} // computing
		}
	}
	return out, nil
}

// derived computes the DLA and explanation maps of a, asked with
// DeriveNext, from the forward the engine kept: the DLA, and the maps if
// asked.
func (c *engineClient) derived(a *analysis) (*engine.DLA, *engine.Explanation) {
	resp := c.do(&engine.Request{Kind: engine.KindDerive, Model: c.id(a.Model), Of: a.EngineID}, nil)
	if err := resp.Error(); err != nil {
		d := &engine.DLA{Err: err.Error()}
		if a.explain != nil {
			return d, &engine.Explanation{Err: err.Error()}
		}
		return d, nil
	}
	return resp.DLA, resp.Explain
}

// attention asks for where token attends in analysis a's runs (Base,
// After), which the engine keeps.
func (c *engineClient) attention(a *session.Analysis, token int) ([]*session.AttentionRows, error) {
	resp := c.do(&engine.Request{Kind: engine.KindAttention, Of: a.EngineID, Token: token}, nil)
	return resp.Attention, resp.Error()
}

// explain computes the explanation maps of target on demand (a model too
// large for them to come with every analysis).
func (c *engineClient) explain(m *session.Model, in *session.Input, target int) *engine.Explanation {
	s := session.Settings{Target: target}
	resp := c.do(&engine.Request{Kind: engine.KindExplain, Model: c.id(m), Input: in, Settings: s}, nil)
	if err := resp.Error(); err != nil {
		return &engine.Explanation{Err: err.Error()}
	}
	return resp.Explain
}

// memoryClasses asks for the classes the memories' values promote (m has
// no weights to compute them).
func (c *engineClient) memoryClasses(m *session.Model, keys []session.MemoryKey) ([][]int32, error) {
	resp := c.do(&engine.Request{Kind: engine.KindMemories, Model: c.id(m), Memories: keys}, nil)
	return resp.Classes, resp.Error()
}

// newID numbers a request the caller may want to cancel (cancelID)
// before it is answered.
func (c *engineClient) newID() int { return int(c.next.Add(1)) }

// patch computes a patching map of the corrupted image from the clean
// input as request id; progress hears the cells done.
func (c *engineClient) patch(id int, m *session.Model, clean *session.Input, corrupt *session.Image, opt session.PatchOptions,
	progress func(done, total int)) (*session.PatchMap, error) {
	req := &engine.Request{ID: id, Kind: engine.KindPatch, Model: c.id(m), Input: clean, Preset: m.Preset,
		Image: engine.PictureOf(corrupt.Name, corrupt.Src), Patch: opt}
	resp := c.do(req, func(p engine.Progress) { progress(p.Step, p.Steps) })
	return resp.Patch, resp.Error()
}

// patchCell runs one cell of the map made by request id again.
func (c *engineClient) patchCell(m *session.Model, id, block, col int) (session.PatchCell, error) {
	resp := c.do(&engine.Request{Kind: engine.KindPatchCell, Model: c.id(m), PatchID: id, Cell: [2]int{block, col}}, nil)
	if err := resp.Error(); err != nil {
		return session.PatchCell{}, err
	}
	if resp.PatchCell == nil {
		return session.PatchCell{}, errors.New("patching: the engine sent no cell")
	}
	return *resp.PatchCell, nil
}

// activations is the image's activations at every hook as a cache file,
// in a Blob to save.
func (c *engineClient) activations(m *session.Model, in *session.Input, name string) (app.Value, error) {
	resp, out := c.doBlob(&engine.Request{Kind: engine.KindActivations, Model: c.id(m), Input: in, Name: name}, nil, nil)
	if err := resp.Error(); err != nil {
		return nil, err
	}
	if out == nil {
		return nil, errors.New("activations: the engine sent no file")
	}
	return out, nil
}

// cancel stops the analysis in flight, if any; it returns at once.
func (c *engineClient) cancel() { c.cancelID(int(c.running.Load())) }

// cancelID stops request id (0: none) at its next block or cell, or before
// it starts.
func (c *engineClient) cancelID(id int) {
	if id == 0 {
		return
	}
	if c.remote != nil {
		c.remote.cancel(id)
	} else {
		c.local.Cancel(id)
	}
}

// explainAlways reports ?explain=1: the explanation maps come with every
// analysis whatever the model's size, as they do for small models (the
// benchmarks time a full analysis so; TestPerfORT).
func explainAlways() bool { return queryParam("explain") == "1" }
