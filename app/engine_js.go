//go:build js

package app

import (
	"errors"
	"fmt"
	"sync"
	"syscall/js"
	"time"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"vitlens/app/engine"
)

// InWorker reports whether this instance of app.wasm runs without a
// document: in the engine's worker (public/web/engine.js).
func InWorker() bool { return js.Global().Get("document").IsUndefined() }

// ServeEngine is app.wasm's entry point in the worker: it answers the
// page's requests one at a time and never returns. A request's bytes are
// decoded here, so the page's thread only copies buffers.
func ServeEngine() {
	e := &engine.Engine{Demo: demoFiles, OpenGPU: openGPU, Yield: eventLoopTurn(),
		Mark: func(stage string) { postMark("vl-worker-" + stage) }}
	// The page's first requests are the demo model and the samples:
	// fetched and decoded while the page starts.
	e.Preload()
	type job struct {
		id   int
		data []byte
		blob js.Value // the request's Data as a Blob, or undefined
	}
	jobs := make(chan job, 64)
	self := js.Global()
	self.Set("onmessage", js.FuncOf(func(_ js.Value, args []js.Value) any {
		msg := args[0].Get("data")
		if c := msg.Get("cancel"); !c.IsUndefined() {
			e.Cancel(c.Int())
			return nil
		}
		jobs <- job{id: msg.Get("id").Int(), data: bytesOf(msg.Get("req")), blob: msg.Get("blob")}
		return nil
	}))
	self.Call("postMessage", map[string]any{"ready": true})
	for j := range jobs {
		req := new(engine.Request)
		var resp *engine.Response
		err := engine.Decode(j.data, req)
		if err == nil && j.blob.Truthy() {
			// A picked file or a download: read here, never in the page.
			req.Data, err = readBlob(req.Name, app.ValueOf(j.blob))
		}
		if err != nil {
			resp = &engine.Response{Err: err.Error()}
		} else {
			postMark(fmt.Sprintf("vl-worker-handle-%d", req.Kind))
			resp = e.Handle(req, func(p engine.Progress) {
				self.Call("postMessage", map[string]any{"id": j.id,
					"progress": []any{p.Step, p.Steps, p.Block, p.Depth}})
			})
		}
		resp.ID = j.id
		// A file for the page (the activations) goes as a Blob, which the
		// page saves without reading.
		var blob any
		if resp.Data != nil {
			u8 := js.Global().Get("Uint8Array").New(len(resp.Data))
			js.CopyBytesToJS(u8, resp.Data)
			blob, resp.Data = js.Global().Get("Blob").New([]any{u8}), nil
		}
		data, err := engine.Encode(resp)
		if err != nil {
			data, _ = engine.Encode(&engine.Response{ID: j.id, Err: err.Error()})
		}
		buf := bufferOf(data)
		postMark(fmt.Sprintf("vl-worker-answer-%d", req.Kind))
		self.Call("postMessage", map[string]any{"id": j.id, "resp": buf, "blob": blob}, []any{buf})
	}
}

// eventLoopTurn returns the engine's Yield: one turn of the worker's event
// loop between blocks, so that a cancel message is delivered (Go hands
// JavaScript the thread only when every goroutine waits). It waits for a
// message it posts itself on a MessageChannel, which comes at once; a timer
// (time.Sleep) is clamped to 4 ms from the fifth nested one on, which made
// the turns 50 ms of a B/16 analysis's 13.
func eventLoopTurn() func() {
	mc := js.Global().Get("MessageChannel")
	if !mc.Truthy() {
		return func() { time.Sleep(time.Millisecond) }
	}
	turned := make(chan struct{}, 1)
	c := mc.New()
	c.Get("port1").Set("onmessage", js.FuncOf(func(js.Value, []js.Value) any {
		turned <- struct{}{}
		return nil
	}))
	port := c.Get("port2")
	return func() {
		port.Call("postMessage", nil)
		<-turned
	}
}

// postMark sends the page a moment of the worker's, on the page's clock
// (performance.timeOrigin + now), for its performance timeline
// (markFromWorker): the browser tests' breakdown of the first analysis.
func postMark(name string) {
	perf := js.Global().Get("performance")
	at := perf.Get("timeOrigin").Float() + perf.Call("now").Float()
	js.Global().Call("postMessage", map[string]any{"marks": []any{[]any{name, at}}})
}

// bytesOf copies an ArrayBuffer into Go memory.
func bytesOf(buf js.Value) []byte {
	u8 := js.Global().Get("Uint8Array").New(buf)
	data := make([]byte, u8.Length())
	js.CopyBytesToGo(data, u8)
	return data
}

// bufferOf copies bytes into a new ArrayBuffer, to be transferred.
func bufferOf(data []byte) js.Value {
	u8 := js.Global().Get("Uint8Array").New(len(data))
	js.CopyBytesToJS(u8, data)
	return u8.Get("buffer")
}

// workerEngine is the page's side of the engine's worker.
type workerEngine struct {
	w       js.Value
	ready   chan struct{}
	mu      sync.Mutex
	fatal   error // set once the worker failed; every call answers it
	pending map[int]*call
}

type call struct {
	done     chan reply
	progress func(engine.Progress)
}

// reply is a response's bytes and its Data's Blob, if any.
type reply struct {
	data []byte
	blob app.Value
}

// startWorker takes over the engine's worker that web/boot.js started
// while app.wasm downloaded (or that it starts now), or returns nil where
// the browser has no workers or the page asks for none (?worker=off): the
// page then computes in-page.
func startWorker() remoteEngine {
	take := js.Global().Get("vlTakeEngine")
	if take.Type() != js.TypeFunction {
		app.Log("vitlens: no web/boot.js: the engine runs in the page")
		return nil
	}
	early := take.Invoke()
	if !early.Truthy() {
		return nil
	}
	w := early.Get("worker")
	we := &workerEngine{ready: make(chan struct{}), pending: map[int]*call{}}
	we.w = w
	onMessage := js.FuncOf(func(_ js.Value, args []js.Value) any {
		msg := args[0].Get("data")
		switch {
		case !msg.Get("marks").IsUndefined():
			markFromWorker(msg.Get("marks"))
		case msg.Get("ready").Truthy():
			mark("vl-worker-ready")
			close(we.ready)
		case !msg.Get("fatal").IsUndefined():
			we.fail(errors.New(msg.Get("fatal").String()))
		case !msg.Get("progress").IsUndefined():
			we.mu.Lock()
			c := we.pending[msg.Get("id").Int()]
			we.mu.Unlock()
			if c != nil && c.progress != nil {
				p := msg.Get("progress")
				c.progress(engine.Progress{Step: p.Index(0).Int(), Steps: p.Index(1).Int(), Block: p.Index(2).Int(), Depth: p.Index(3).Int()})
			}
		case !msg.Get("resp").IsUndefined():
			id := msg.Get("id").Int()
			we.mu.Lock()
			c := we.pending[id]
			delete(we.pending, id)
			we.mu.Unlock()
			if c != nil {
				var blob app.Value
				if b := msg.Get("blob"); b.Truthy() {
					blob = app.ValueOf(b)
				}
				c.done <- reply{bytesOf(msg.Get("resp")), blob}
			}
		}
		return nil
	})
	onError := js.FuncOf(func(_ js.Value, args []js.Value) any {
		msg := "error"
		if len(args) > 0 && args[0].Get("message").Truthy() {
			msg = args[0].Get("message").String()
		}
		we.fail(errors.New(msg))
		return nil
	})
	w.Set("onmessage", onMessage)
	w.Set("onerror", onError)
	// What the worker said before the page took it over, in order.
	queued := early.Get("queued")
	for i := range queued.Length() {
		ev := queued.Index(i)
		if ev.Get("type").String() == "error" {
			onError.Invoke(ev)
		} else {
			onMessage.Invoke(ev)
		}
	}
	return we
}

// markFromWorker puts the worker's moments ([name, time on the page's
// clock] pairs) on the page's performance timeline.
func markFromWorker(marks js.Value) {
	// Marks are for measuring only: a browser whose performance.mark
	// takes no start time loses them, not the page.
	defer func() { _ = recover() }()
	perf := js.Global().Get("performance")
	origin := perf.Get("timeOrigin").Float()
	for i := range marks.Length() {
		m := marks.Index(i)
		perf.Call("mark", m.Index(0).String(), map[string]any{"startTime": m.Index(1).Float() - origin})
	}
}

// fail ends every waiting call: the worker is gone.
func (we *workerEngine) fail(err error) {
	we.mu.Lock()
	defer we.mu.Unlock()
	if we.fatal != nil {
		return
	}
	we.fatal = fmt.Errorf("%w: %v", errWorkerFailed, err)
	app.Log("vitlens: engine worker:", err)
	select {
	case <-we.ready:
	default:
		close(we.ready)
	}
	for id, c := range we.pending {
		close(c.done)
		delete(we.pending, id)
	}
}

func (we *workerEngine) call(id int, req []byte, in app.Value, progress func(engine.Progress)) ([]byte, app.Value, error) {
	<-we.ready
	c := &call{done: make(chan reply, 1), progress: progress}
	we.mu.Lock()
	if we.fatal != nil {
		we.mu.Unlock()
		return nil, nil, we.fatal
	}
	we.pending[id] = c
	we.mu.Unlock()
	buf := bufferOf(req)
	msg := js.Global().Get("Object").New()
	msg.Set("id", id)
	msg.Set("req", buf)
	if in != nil {
		// A Blob is cloned by reference: its bytes are not copied.
		app.ValueOf(msg).Set("blob", in)
	}
	we.w.Call("postMessage", msg, []any{buf})
	out, ok := <-c.done
	if !ok {
		return nil, nil, we.fatal
	}
	return out.data, out.blob, nil
}

func (we *workerEngine) cancel(id int) { we.w.Call("postMessage", map[string]any{"cancel": id}) }
