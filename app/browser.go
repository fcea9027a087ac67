package app

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
	"time"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"vitlens/public"
)

// Browser plumbing through go-app's portable app.Value, so this file also
// compiles natively (where nothing here is ever called: the server renders
// a static shell, not these components). Every helper that awaits a promise
// blocks its goroutine: call them from ctx.Async, never from an event
// handler.

// await blocks until the promise p settles.
func await(p app.Value) (app.Value, error) {
	type result struct {
		v   app.Value
		err error
	}
	ch := make(chan result, 1)
	var ok, fail app.Func
	ok = app.FuncOf(func(_ app.Value, args []app.Value) any {
		v := app.Undefined()
		if len(args) > 0 {
			v = args[0]
		}
		ch <- result{v: v}
		return nil
	})
	fail = app.FuncOf(func(_ app.Value, args []app.Value) any {
		msg := "promise rejected"
		if len(args) > 0 && args[0].Truthy() {
			msg = args[0].Call("toString").String()
		}
		ch <- result{err: errors.New(msg)}
		return nil
	})
	p.Call("then", ok, fail)
	r := <-ch
	ok.Release()
	fail.Release()
	return r.v, r.err
}

// jsFile is a File from an <input type=file>, a drop or a paste.
type jsFile struct {
	v    app.Value
	Name string
	Size int64
	Type string
}

// filesOf lists a FileList.
func filesOf(list app.Value) []jsFile {
	if !list.Truthy() {
		return nil
	}
	var out []jsFile
	for i := 0; i < list.Length(); i++ {
		f := list.Index(i)
		out = append(out, jsFile{v: f, Name: f.Get("name").String(), Size: int64(f.Get("size").Float()), Type: f.Get("type").String()})
	}
	return out
}

// read copies the file's bytes into Go memory.
func (f jsFile) read() ([]byte, error) { return readBlob(f.Name, f.v) }

// readBlob copies a Blob's (a File's) bytes into Go memory; name names it
// in the error.
func readBlob(name string, blob app.Value) ([]byte, error) {
	buf, err := await(blob.Call("arrayBuffer"))
	if err != nil {
		return nil, fmt.Errorf("%s: reading failed: %v", name, err)
	}
	return arrayBufferBytes(buf), nil
}

// arrayBufferBytes copies an ArrayBuffer into Go memory (engine_js.go has
// a js.Value twin, bytesOf, for the worker's messages).
func arrayBufferBytes(buf app.Value) []byte {
	u8 := app.Window().Get("Uint8Array").New(buf)
	data := make([]byte, u8.Length())
	app.CopyBytesToGo(data, u8)
	return data
}

// fetchOK starts downloading url: the response, once the server has
// answered with success.
func fetchOK(url string) (app.Value, error) {
	resp, err := await(app.Window().Call("fetch", url))
	if err != nil {
		return nil, fmt.Errorf("%s: download failed: %v (offline, or the server does not allow cross-origin downloads)", url, err)
	}
	if !resp.Get("ok").Bool() {
		return nil, fmt.Errorf("%s: server answered %d %s", url, resp.Get("status").Int(), resp.Get("statusText").String())
	}
	return resp, nil
}

// fetchBlob downloads url into a Blob, reporting progress (total is -1
// when the server does not say) at most every 100 ms. The bytes stay in
// the browser's memory, chunk by chunk: the engine's worker reads them.
func fetchBlob(url string, progress func(done, total int64)) (app.Value, error) {
	resp, err := fetchOK(url)
	if err != nil {
		return nil, err
	}
	total := int64(-1)
	if cl := resp.Get("headers").Call("get", "content-length"); cl.Truthy() {
		fmt.Sscan(cl.String(), &total)
	}
	chunks := app.Window().Get("Array").New()
	reader := resp.Get("body").Call("getReader")
	var done int64
	last := time.Time{}
	for {
		chunk, err := await(reader.Call("read"))
		if err != nil {
			return nil, fmt.Errorf("%s: download interrupted after %d bytes: %v", url, done, err)
		}
		if chunk.Get("done").Bool() {
			break
		}
		v := chunk.Get("value")
		chunks.Call("push", v)
		done += int64(v.Length())
		if time.Since(last) > 100*time.Millisecond {
			progress(done, total)
			last = time.Now()
		}
	}
	progress(done, total)
	return app.Window().Get("Blob").New(chunks), nil
}

// fetchBytes downloads url into Go memory (fetchBlob, then readBlob).
func fetchBytes(url string, progress func(done, total int64)) ([]byte, error) {
	blob, err := fetchBlob(url, progress)
	if err != nil {
		return nil, err
	}
	return readBlob(url, blob)
}

// fetchWhole downloads url into Go memory in one piece
// (Response.arrayBuffer): for files that need no progress bar, it wakes
// the Go program twice, where fetchBytes wakes it for every chunk and again
// for the Blob it reads back. The engine's worker reads the demo's files
// (the model, the samples' index, 30 samples) as it starts, when each
// wake-up waits for its thread, busy parsing the model.
func fetchWhole(url string) ([]byte, error) {
	resp, err := fetchOK(url)
	if err != nil {
		return nil, err
	}
	buf, err := await(resp.Call("arrayBuffer"))
	if err != nil {
		return nil, fmt.Errorf("%s: download interrupted: %v", url, err)
	}
	return arrayBufferBytes(buf), nil
}

// demoFiles are the demo model and samples the server publishes under
// /web/demo/, laid out as package public's Files.
var demoFiles = webFiles{dir: "/web/" + public.DemoWebDir + "/"}

// webFiles reads files from the server, at this build's version: the URLs
// the service worker precaches, so they are read offline too. It only
// implements ReadFile (fs.ReadFile uses it): HTTP has no way to list a
// folder or to stat a file without reading it.
type webFiles struct{ dir string }

func (w webFiles) Open(name string) (fs.File, error) {
	return nil, &fs.PathError{Op: "open", Path: name, Err: errors.ErrUnsupported}
}

func (w webFiles) ReadFile(name string) ([]byte, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "read", Path: name, Err: fs.ErrInvalid}
	}
	data, err := fetchWhole(w.URL(name))
	if err != nil {
		return nil, &fs.PathError{Op: "read", Path: name, Err: err}
	}
	return data, nil
}

// URL is where a file is served, at this build's version.
func (w webFiles) URL(name string) string { return w.dir + name + "?v=" + app.Getenv("GOAPP_VERSION") }

// urlFileName is the last path element of a URL, without its query.
func urlFileName(u string) string {
	if i := strings.IndexAny(u, "?#"); i >= 0 {
		u = u[:i]
	}
	name := path.Base(u)
	if name == "." || name == "/" || name == "" {
		return "model"
	}
	return name
}

// download saves data as a file through a temporary blob: URL.
func download(name, mime string, data []byte) { saveBlob(name, blobOf(data, mime)) }

// blobOf copies data into a new Blob of the given type.
func blobOf(data []byte, mime string) app.Value {
	u8 := app.Window().Get("Uint8Array").New(len(data))
	app.CopyBytesToJS(u8, data)
	return app.Window().Get("Blob").New([]any{u8}, map[string]any{"type": mime})
}

func saveBlob(name string, blob app.Value) {
	url := app.Window().Get("URL").Call("createObjectURL", blob)
	clickDownload(url, name)
	// Revoking at once can cancel the download in some browsers.
	time.AfterFunc(10*time.Second, func() { app.Window().Get("URL").Call("revokeObjectURL", url) })
}

// savePNG rasterises the SVG figures inside the element with the given id,
// side by side as on the page (before and after an intervention, two
// models), at twice their size, and downloads them as one PNG. The figures
// carry all their styling as attributes, so detached copies render the same.
func savePNG(id, name string) error {
	el := app.Window().GetElementByID(id)
	if !el.Truthy() {
		return fmt.Errorf("no figure %q on the page", id)
	}
	svgs := el.Call("querySelectorAll", "svg")
	if svgs.Length() == 0 {
		return fmt.Errorf("figure %q has nothing drawn yet", id)
	}
	const scale, gap = 2, 16
	type part struct {
		img  app.Value
		x, w float64
		h    float64
	}
	var parts []part
	width, height := 0.0, 0.0
	for i := 0; i < svgs.Length(); i++ {
		svg := svgs.Index(i)
		w, h := svg.Get("width").Get("baseVal").Get("value").Float(), svg.Get("height").Get("baseVal").Get("value").Float()
		text := app.Window().Get("XMLSerializer").New().Call("serializeToString", svg)
		blob := app.Window().Get("Blob").New([]any{text}, map[string]any{"type": "image/svg+xml"})
		src := app.Window().Get("URL").Call("createObjectURL", blob)
		img := app.Window().Get("Image").New()
		img.Set("src", src)
		_, err := await(img.Call("decode"))
		app.Window().Get("URL").Call("revokeObjectURL", src)
		if err != nil {
			return fmt.Errorf("rasterising %s: %v", name, err)
		}
		if i > 0 {
			width += gap
		}
		parts = append(parts, part{img: img, x: width, w: w, h: h})
		width += w
		height = max(height, h)
	}
	canvas := app.Window().Get("document").Call("createElement", "canvas")
	canvas.Set("width", int(width*scale))
	canvas.Set("height", int(height*scale))
	g := canvas.Call("getContext", "2d")
	g.Set("fillStyle", "#ffffff")
	g.Call("fillRect", 0, 0, width*scale, height*scale)
	for _, p := range parts {
		g.Call("drawImage", p.img, p.x*scale, 0, p.w*scale, p.h*scale)
	}
	clickDownload(canvas.Call("toDataURL", "image/png"), name)
	return nil
}

// clickDownload makes the browser download href (a blob or data URL) as name.
func clickDownload(href any, name string) {
	a := app.Window().Get("document").Call("createElement", "a")
	a.Set("href", href)
	a.Set("download", name)
	app.Window().Get("document").Get("body").Call("appendChild", a)
	a.Call("click")
	a.Call("remove")
}

// pause lets the browser paint. The Go scheduler hands control back to
// the page only when every goroutine is blocked, so long CPU work calls this
// between steps; a sleep of more than a frame lets one frame be drawn.
func pause() { time.Sleep(20 * time.Millisecond) }

// frameWait is the longest nextFrame waits: a hidden tab runs no animation
// frames, and work drawn in steps must go on there too.
const frameWait = 20 * time.Millisecond

// nextFrame blocks until the browser's next animation frame
// (requestAnimationFrame), frameWait at most. The page's work then runs at
// the start of that frame, before its style, layout and paint: a step of
// drawing waits about half a frame for its turn, where pause waits 20 ms
// every time.
func nextFrame() { waitFrame(false, frameWait) }

// paintWait is the longest afterPaint waits for a frame.
const paintWait = 100 * time.Millisecond

// afterPaint blocks until the browser has drawn its next frame: the
// animation frame's callback queues a task (setTimeout 0), which runs after
// that frame's style, layout and paint, in a task of its own. Work that
// follows (the first load's requests to the engine) then lengthens neither
// the task that is running nor the frame's. paintWait at most.
func afterPaint() { waitFrame(true, paintWait) }

// waitFrame is nextFrame (after false) and afterPaint (after true). Its
// fallback for hidden tabs, which draw no frames, is the browser's timer,
// not a Go timer: Go checks its timers whenever it schedules, so one could
// expire inside the task that is running (a long one: the app's start) and
// let the work that should follow the frame run there.
func waitFrame(after bool, most time.Duration) {
	w := app.Window()
	fired := make(chan struct{}, 1)
	queued := make(chan app.Value, 1) // the task the frame's callback queued (after)
	done := app.FuncOf(func(app.Value, []app.Value) any {
		select {
		case fired <- struct{}{}:
		default:
		}
		return nil
	})
	frame := done
	if after {
		frame = app.FuncOf(func(app.Value, []app.Value) any {
			queued <- w.Call("setTimeout", done, 0)
			return nil
		})
		defer frame.Release()
	}
	id := w.Call("requestAnimationFrame", frame)
	timeout := w.Call("setTimeout", done, most.Milliseconds())
	<-fired
	// Whichever came first, the others are called off, so that done is
	// never called once released.
	w.Call("cancelAnimationFrame", id)
	w.Call("clearTimeout", timeout)
	select {
	case t := <-queued:
		w.Call("clearTimeout", t)
	default:
	}
	done.Release()
}

// sinceNavigation is performance.now(): milliseconds since the page started
// loading.
func sinceNavigation() float64 { return app.Window().Get("performance").Call("now").Float() }

// mark records a named moment on the page's performance timeline, which the
// browser tests read to time the main thread's long tasks against.
func mark(name string) { app.Window().Get("performance").Call("mark", name) }

// measure records on the page's performance timeline that the work named
// name ran from start (sinceNavigation) until now, for the browser tests'
// list of what made the main thread's long tasks.
func measure(name string, start float64) {
	opt := map[string]any{"start": start, "end": sinceNavigation()}
	app.Window().Get("performance").Call("measure", name, opt)
}

// queryParam reads a parameter of the page's URL.
func queryParam(name string) string { return app.Window().URL().Query().Get(name) }

// firstDrawn tells web/boot.js that the first analysis is drawn (or the
// demo failed): the service worker's registration, which it holds back
// until then, may go ahead.
func firstDrawn() {
	if f := app.Window().Get("vlFirstDrawn"); f.Truthy() {
		f.Invoke()
	}
}
