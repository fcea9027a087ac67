package app

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"vitlens/app/engine"
	"vitlens/app/session"
)

// remoteEngine is the engine in its worker: requests and responses travel
// encoded (engine.Encode), as transferable buffers.
type remoteEngine interface {
	call(id int, req []byte, progress func(engine.Progress)) ([]byte, error)
	cancel(id int)
}

// errWorkerFailed says the engine's worker stopped or never started.
var errWorkerFailed = errors.New("the engine's worker failed")

// engineClient sends the page's requests to the engine: to its worker, or,
// where the browser has none (or it failed to start), to the same engine
// in the page, which then yields between blocks so the page still paints.
// Only the page's job goroutine calls it; cancel may come from any.
type engineClient struct {
	remote remoteEngine // nil: in-page
	local  *engine.Engine

	mu      sync.Mutex
	ids     map[*session.Model]int // the engine's number of each model the page holds
	loaded  bool                   // a model reached the engine: its worker cannot be swapped any more
	next    atomic.Int64
	running atomic.Int64 // the analysis in flight, for cancel
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

// do sends one request and waits for its answer.
func (c *engineClient) do(req *engine.Request, progress func(engine.Progress)) *engine.Response {
	if req.ID == 0 {
		req.ID = int(c.next.Add(1))
	}
	if c.remote == nil {
		return c.local.Handle(req, progress)
	}
	start := sinceNavigation()
	data, err := engine.Encode(req)
	measure(fmt.Sprintf("vl-encode-%d", req.Kind), start)
	if err != nil {
		return &engine.Response{ID: req.ID, Err: err.Error()}
	}
	out, err := c.remote.call(req.ID, data, progress)
	if errors.Is(err, errWorkerFailed) {
		c.mu.Lock()
		first := !c.loaded
		c.mu.Unlock()
		if first {
			// It never held a model: carry on in the page.
			c.remote = nil
			return c.local.Handle(req, progress)
		}
		return &engine.Response{ID: req.ID, Err: err.Error() + ": reload the page"}
	}
	if err != nil {
		return &engine.Response{ID: req.ID, Err: err.Error()}
	}
	resp := new(engine.Response)
	start = sinceNavigation()
	err = engine.Decode(out, resp)
	measure(fmt.Sprintf("vl-decode-%d", req.Kind), start)
	if err != nil {
		return &engine.Response{ID: req.ID, Err: err.Error()}
	}
	return resp
}

// model loads a model through req (KindLoad, KindDemo, KindRandom).
func (c *engineClient) model(req *engine.Request) (*session.Model, time.Duration, error) {
	resp := c.do(req, nil)
	if err := resp.Error(); err != nil {
		return nil, 0, err
	}
	c.mu.Lock()
	c.ids[resp.Loaded] = resp.Model
	c.loaded = true
	c.mu.Unlock()
	return resp.Loaded, resp.Took, nil
}

func (c *engineClient) loadModel(name string, data []byte, opt session.LoadOptions) (*session.Model, time.Duration, error) {
	return c.model(&engine.Request{Kind: engine.KindLoad, Name: name, Data: data, Opt: opt})
}

func (c *engineClient) loadDemo(opt session.LoadOptions) (*session.Model, error) {
	m, _, err := c.model(&engine.Request{Kind: engine.KindDemo, Opt: opt})
	return m, err
}

func (c *engineClient) randomInit(m *session.Model) (*session.Model, error) {
	r, _, err := c.model(&engine.Request{Kind: engine.KindRandom, Model: c.id(m)})
	return r, err
}

func (c *engineClient) id(m *session.Model) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ids[m]
}

// pictures asks for decoded images (KindSamples, KindDecode): the page
// wraps their pixels without decoding anything.
func (c *engineClient) pictures(req *engine.Request) ([]*session.Image, error) {
	resp := c.do(req, nil)
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
	return c.pictures(&engine.Request{Kind: engine.KindSamples})
}

func (c *engineClient) decode(name string, data []byte) (*session.Image, error) {
	imgs, err := c.pictures(&engine.Request{Kind: engine.KindDecode, Name: name, Data: data})
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

// tunedLens is the page's tuned lens as the engine receives it: numbered,
// its file sent until the engine has it.
type tunedLens struct {
	id   int
	name string
	data []byte
	sent bool
}

// analysis is what one analysis request brings back.
type analysis struct {
	*session.Analysis
	explain          *engine.Explanation // nil when not asked
	dla              *engine.DLA
	backend, note    string
	canceled, inPage bool
}

// analyze runs an analysis of img (in: its prepared input for m, or nil)
// in the engine.
func (c *engineClient) analyze(seq int, m *session.Model, img *session.Image, in *session.Input, s session.Settings,
	tl *tunedLens, allowGPU, derive bool, progress func(engine.Progress)) (*analysis, error) {
	req := &engine.Request{Kind: engine.KindAnalyze, Model: c.id(m), Input: in, Preset: m.Preset, Settings: s,
		AllowGPU: allowGPU, DLA: derive, Explain: derive && m.Model.NumParams() <= engine.AutoExplainParams}
	req.Settings.Lens = nil
	if in == nil {
		req.Image = engine.PictureOf(img.Name, img.Src)
	}
	if tl != nil && s.Lens != nil {
		req.LensID, req.LensName = tl.id, tl.name
		if !tl.sent {
			req.LensData = tl.data
		}
	}
	// cancel reads the number of the analysis in flight.
	req.ID = int(c.next.Add(1))
	c.running.Store(int64(req.ID))
	resp := c.do(req, progress)
	c.running.CompareAndSwap(int64(req.ID), 0)
	if err := resp.Error(); err != nil {
		return &analysis{canceled: errors.Is(err, engine.ErrCanceled)}, err
	}
	if tl != nil && req.LensData != nil {
		tl.sent = true
	}
	r := resp.Result
	return &analysis{Analysis: r.Analysis(seq, m, img, s), explain: resp.Explain, dla: r.DLA,
		backend: r.BackendName, note: r.BackendNote, inPage: c.remote == nil}, nil
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

// cancel stops the analysis in flight, if any; it returns at once.
func (c *engineClient) cancel() {
	id := int(c.running.Load())
	if id == 0 {
		return
	}
	if c.remote != nil {
		c.remote.cancel(id)
	} else {
		c.local.Cancel(id)
	}
}
