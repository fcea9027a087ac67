// Package app is vitlens's web app: go-app components, one view per file,
// over the browser-free engine in app/session. Page owns all state; the
// views only render what they are given and report user intent back as
// go-app actions (action.go), so data flows one way.
package app

import (
	"errors"
	"fmt"
	"path"
	"strings"
	"sync/atomic"
	"time"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"vitlens/app/engine"
	"vitlens/app/session"
	"vitlens/public"
	"vitlens/vit"
	"vitlens/vit/preprocess"
)

// Page is the whole app: one route, one screen.
type Page struct {
	app.Compo

	model    *session.Model
	samples  []*session.Image
	thumbs   []Thumb
	image    *session.Image
	inputs   map[*session.Image]*session.Input // for the current model and preset
	settings session.Settings
	analysis *session.Analysis
	// compare is a second model analysed on the same image and class
	// (a random init of the first, or another checkpoint); nil when none.
	compare   *session.Model
	analysis2 *session.Analysis

	// uploads are the user's own images (opened, dropped or pasted), kept
	// for the patching card's corrupted-image picker.
	uploads []*session.Image

	// lensName names the tuned lens's file (the engine holds it: see
	// lens); tuned says whether the views read through it.
	lensName string
	tuned    bool

	site  vit.Site
	block int // selected block, 0-based
	token int // selected token (original index)
	mode  string

	status, busy, errText, notice string
	progress                      float64 // model download, 0..1; -1 when idle
	progressText                  string
	backendName, backendNote      string
	allowGPU                      bool
	firstMS                       float64
	loadOpt                       session.LoadOptions
	lastFile                      *modelFile
	// headChoices, when the last checkpoint did not say its head count:
	// the counts possible for its width (headsDim), most likely first.
	headChoices []int
	headsDim    int
	controls    bool // the controls are unfolded on a narrow screen

	update bool // a newer version is cached: offer a reload

	jobs   chan func()
	seq    int
	latest atomic.Int64
	// eng computes everything heavy, in its worker (or in the page where
	// there is none): the job goroutine calls it, and the patching card.
	// The page's models are weightless: eng holds the weights.
	eng *engineClient
	// lens is the tuned lens the engine read (nil: none).
	lens    *tunedLens
	lensSeq int
	// memAsked are the memories whose value classes were asked of the
	// engine and not answered yet (for the model they were asked for);
	// memKnown counts the answers, so the memories card redraws.
	memAsked map[session.MemoryKey]*session.Model
	memKnown int
	// attention is the attention rows the page has of the current
	// analysis (the engine keeps the maps), attnAsked those asked for.
	attention map[attnKey]attnRows
	attnAsked map[attnKey]bool
	// explain and dla are the current analysis's explanation maps and
	// direct logit attribution, computed by the engine with it.
	explain *engine.Explanation
	dla     *engine.DLA
	// later is the analysis each step of views after the first shows:
	// the current one from that step's own task on (see reveal).
	later [numSteps]*session.Analysis
	// running says an analysis is in flight (the Cancel button);
	// runProgress is its advance in words.
	running     bool
	runProgress string
	runFraction float64
}

// modelFile is the last checkpoint the user gave, kept so it can be
// reloaded with other options (heads, non-strict) without picking it again:
// a Blob (the picked File, or the download), which the engine reads.
type modelFile struct {
	name   string
	blob   app.Value
	size   int64
	config []byte
}

// Click modes of the image.
const (
	modeInspect = "inspect"
	modeDrop    = "drop"
)

func (p *Page) OnMount(ctx app.Context) {
	p.status, p.progress, p.mode, p.site, p.token = "loading", -1, modeInspect, vit.SiteHS, -1
	p.allowGPU = queryParam("backend") != "cpu"
	p.inputs = map[*session.Image]*session.Input{}
	p.jobs = make(chan func(), 32)
	p.eng = newEngineClient()
	p.busy = "Loading the demo model…"
	p.handleActions(ctx)
	p.handlePatchActions(ctx)
	p.listenForPaste(ctx)
	p.listenForDrops(ctx)
	listenForGridKeys()
	ctx.Async(func() {
		for job := range p.jobs {
			job()
		}
	})
	p.jobs <- func() {
		// The page's first paint: the task that started the app ends, the
		// first frame is drawn in one of its own, and the demo is asked for
		// in a third.
		afterPaint()
		mark("vl-demo-load")
		m, err, samples, serr := p.eng.demo()
		// The engine decodes the samples; the gallery shows their files
		// (the URLs the service worker precached), so the page decodes
		// and encodes nothing.
		thumbs := make([]Thumb, len(samples))
		for i, s := range samples {
			thumbs[i] = Thumb{Name: s.Name, URI: demoFiles.URL(path.Join(public.SamplesDir, s.Name))}
		}
		// The first analysis is asked for before anything is drawn, so the
		// engine computes while the page draws the model's panel; the
		// gallery follows in a step of its own (drawn with the panel in one
		// render, it made a long task), on a goroutine of its own, since
		// the jobs' goroutine is the analysis's until it is back.
		ctx.Dispatch(func(ctx app.Context) {
			start := sinceNavigation()
			ctx.Defer(func(app.Context) { measure("vl-render-model", start) })
			if err != nil {
				p.fail(err)
				p.status = "error"
				firstDrawn()
				return
			}
			p.setModel(m)
			if len(samples) > 0 {
				p.image = samples[0]
			}
			p.analyze(ctx)
		})
		ctx.Async(func() {
			newSteps().draw(ctx, "vl-render-samples", func(app.Context) {
				p.samples, p.thumbs = samples, thumbs
				if serr != nil {
					p.fail(fmt.Errorf("sample images: %w", serr))
				}
			})
		})
	}
}

func (p *Page) OnDismount() { close(p.jobs) }

// OnAppUpdate is go-app's signal that the service worker fetched a newer
// version: offer to reload.
func (p *Page) OnAppUpdate(ctx app.Context) { p.update = ctx.AppUpdateAvailable() }

// fail shows an error; what was loaded keeps working.
func (p *Page) fail(err error) {
	p.errText = err.Error()
	p.busy = ""
	app.Log("vitlens:", err)
}

// setModel switches to a freshly loaded model, keeping the image.
func (p *Page) setModel(m *session.Model) {
	for _, old := range []*session.Model{p.model, p.compare} {
		if old != nil && old != m {
			p.jobs <- func() { p.eng.release(old) }
		}
	}
	p.model = m
	p.inputs = map[*session.Image]*session.Input{}
	p.settings = session.Settings{Target: -1, Edit: p.settings.Edit}
	p.block = m.Model.Config.Depth - 1
	p.token = 0 // [CLS], or the first patch of a model without one
	p.analysis, p.later = nil, [numSteps]*session.Analysis{}
	p.compare, p.analysis2 = nil, nil // it was compared with the model before
	p.lensName, p.tuned = "", false   // translators belong to one model
	p.lens = nil
}

// loadLens reads a tuned lens (vitlens tune-lens's translators.safetensors)
// for the current model and reads through it.
func (p *Page) loadLens(ctx app.Context, files []jsFile) {
	m := p.model
	if m == nil || len(files) == 0 {
		p.fail(fmt.Errorf("load a model before its tuned lens"))
		return
	}
	f := files[0]
	p.lensSeq++
	id := p.lensSeq
	// The engine reads and checks the file (after the jobs before it: the
	// model may still be loading there).
	p.jobs <- func() {
		err := p.eng.readLens(m, id, f.Name, f.v)
		ctx.Dispatch(func(ctx app.Context) {
			if err != nil {
				p.fail(err)
				return
			}
			if p.model != m {
				return
			}
			p.lensName, p.tuned = f.Name, true
			p.lens = &tunedLens{id: id}
			p.analyze(ctx)
		})
	}
}

// analyze queues an analysis of the current image with the current
// settings. Requests made while one runs replace each other: only the
// latest is computed.
func (p *Page) analyze(ctx app.Context) {
	if p.model == nil || p.image == nil {
		return
	}
	p.seq++
	seq := p.seq
	p.latest.Store(int64(seq))
	m, img, s, in, allowGPU := p.model, p.image, p.settings, p.inputs[p.image], p.allowGPU
	m2 := p.compare
	tl, token := p.lens, p.token
	p.status = "busy"
	p.busy = "Analysing " + img.Name + "…"
	p.jobs <- func() {
		if p.latest.Load() != int64(seq) {
			return
		}
		mark("vl-analysis")
		// Each update redraws the page: at most one every progressEvery, the
		// first (with the Cancel button) after it, so a small model's
		// analysis costs the page no render at all.
		shown := time.Now()
		var done atomic.Bool
		progress := func(model string) func(engine.Progress) {
			return func(pr engine.Progress) {
				if time.Since(shown) < progressEvery {
					return
				}
				shown = time.Now()
				ctx.Dispatch(func(app.Context) {
					if !done.Load() { // not after the analysis ended
						p.running, p.runProgress, p.runFraction = true, progressText(model, pr), pr.Fraction()
					}
				})
			}
		}
		a, err := p.eng.analyze(seq, m, img, in, s, tl, token, allowGPU, true, progress(""))
		var a2 *analysis
		var err2 error
		if err == nil && m2 != nil {
			var s2 session.Settings
			if s2, err2 = session.CompareSettings(a.Analysis, m2); err2 == nil {
				var in2 *session.Input
				if m2.Preset.Name == m.Preset.Name && m2.Model.Config.ImageSize == m.Model.Config.ImageSize {
					in2 = a.Input // the same pixels: a random init, or the same family
				}
				a2, err2 = p.eng.analyze(seq, m2, img, in2, s2, nil, token, allowGPU, false, progress("second model: "))
				if errors.Is(err2, engine.ErrCanceled) {
					err = err2
				}
			}
		}
		mark("vl-analysed")
		done.Store(true)
		ctx.Dispatch(func(ctx app.Context) {
			start := sinceNavigation()
			ctx.Defer(func(app.Context) { measure("vl-render-upper", start) })
			p.running, p.runProgress, p.runFraction = false, "", 0
			if err == nil {
				p.backendName, p.backendNote = a.backend, a.note
			}
			if seq != p.seq {
				return // a newer request is queued
			}
			p.status, p.busy = "ready", ""
			if errors.Is(err, engine.ErrCanceled) {
				// What was shown stays; the settings go back to it.
				p.notice = noticeCancelled
				if p.analysis != nil {
					p.image, p.settings = p.analysis.Image, p.analysis.Settings
				}
				return
			}
			if err != nil {
				p.fail(err)
				return
			}
			if p.notice == noticeCancelled {
				p.notice = ""
			}
			p.inputs[img] = a.Input
			p.analysis, p.analysis2 = a.Analysis, nil
			p.attention = map[attnKey]attnRows{} // the rows of older analyses are not shown again
			p.putAttention(a.EngineID, a.token, a.attention, nil)
			if a2 != nil {
				p.analysis2 = a2.Analysis
			}
			if err2 != nil {
				p.fail(fmt.Errorf("second model (%s): %w", m2.Name, err2))
			}
			p.status = "busy" // until reveal has drawn every view (and the maps are in)
			p.reveal(ctx, a)
		})
		if err == nil && a.later && p.latest.Load() == int64(seq) {
			// DLA and the maps, from the forward the engine kept, while
			// the page draws the rest (the engine is free once it answered).
			d, x := p.eng.derived(a)
			ctx.Dispatch(func(ctx app.Context) {
				start := sinceNavigation()
				p.derivedArrived(a, d, x)
				ctx.Defer(func(app.Context) { measure("vl-render-derived", start) })
			})
		}
	}
}

// derivedArrived shows the DLA and explanation maps of a, which came after
// it (later): the page is ready once they and every view are drawn.
func (p *Page) derivedArrived(a *analysis, d *engine.DLA, x *engine.Explanation) {
	a.dla, a.explain, a.later = d, x, false
	if p.analysis != a.Analysis {
		return
	}
	if p.later[stepAttention] == a.Analysis {
		p.explain = x
	}
	if p.later[stepDLA] == a.Analysis {
		p.dla = d
	}
	if p.later[numSteps-1] == a.Analysis {
		p.ready()
	}
}

// ready says every view of the current analysis is drawn.
func (p *Page) ready() {
	p.status = "ready"
	if p.firstMS == 0 {
		p.firstMS = sinceNavigation()
		firstDrawn()
	}
}

// steps draws a large change in steps: each step's render is a short
// task, and a step that starts a task waits for the browser's next frame
// (nextFrame), so the browser paints and handles input between them.
// A step shares the task of the one before when both fit in stepBudget
// (judged by the one before's time): a wait per step cost more than most
// of the steps (7-30 ms each for the demo's results). For a job or
// ctx.Async goroutine only.
type steps struct {
	since time.Time     // when the task the steps run in started
	last  time.Duration // how long the step before took
}

// stepBudget is how long consecutive steps may keep one task: under the
// 50 ms the browser counts as a long task.
const stepBudget = 40 * time.Millisecond

func newSteps() *steps { return &steps{} }

// draw runs f on the UI goroutine and returns once the render that follows
// is over; it waits for the next frame first unless this step, if it takes
// as long as the one before, still fits in the task's budget. name is its
// measure on the page's performance timeline.
func (s *steps) draw(ctx app.Context, name string, f func(app.Context)) {
	if s.since.IsZero() || time.Since(s.since)+s.last > stepBudget {
		nextFrame()
		s.since = time.Now()
	}
	began := time.Now()
	defer func() { s.last = time.Since(began) }()
	drawn := make(chan struct{})
	ctx.Dispatch(func(ctx app.Context) {
		start := sinceNavigation()
		f(ctx)
		ctx.Defer(func(app.Context) { measure(name, start); close(drawn) })
	})
	select {
	case <-drawn:
	case <-ctx.Done(): // the page is gone: nothing is drawn any more
	}
}

// The views after the overlay and the prediction follow in steps,
// each drawn in a task of its own: one render of them all is a long task
// (over 100 ms on the demo model). A view shows the previous analysis until
// its step, so nothing is unmounted and mounted again.
const (
	stepCurve = iota
	stepHeatmap
	stepAttention // the attention and explanation maps
	stepMemory
	stepDLA // direct logit attribution
	stepPatch
	numSteps
)

// reveal draws the steps with a's results (steps). A newer
// analysis stops it. The page is ready after the last.
func (p *Page) reveal(ctx app.Context, a *analysis) {
	// Deferred to after this update's render, so the steps start when the
	// render is over (the first waits for the next frame).
	ctx.Defer(func(ctx app.Context) {
		ctx.Async(func() {
			s := newSteps()
			for step := range numSteps {
				newer := false
				s.draw(ctx, fmt.Sprintf("vl-render-step-%d", step), func(app.Context) {
					if newer = p.analysis != a.Analysis; newer {
						return // it took this one's place
					}
					p.later[step] = a.Analysis
					switch step {
					case stepAttention:
						p.explain = a.explain
					case stepDLA:
						p.dla = a.dla
					case numSteps - 1:
						if !a.later { // else derivedArrived says it
							p.ready()
						}
					}
				})
				if newer {
					return
				}
			}
		})
	})
}

// loadModel parses a checkpoint on the worker; on failure the current model
// stays.
func (p *Page) loadModel(ctx app.Context, f *modelFile) {
	opt := p.loadOpt
	opt.ConfigJSON = f.config
	p.busy = "Reading " + f.name + "…"
	p.lastFile = f
	p.jobs <- func() {
		// The engine reads a Hugging Face config.json's class names
		// (id2label) too.
		m, took, err := p.eng.loadModel(f.name, f.blob, opt)
		ctx.Dispatch(func(ctx app.Context) {
			p.headChoices, p.headsDim = nil, 0
			if dim, choices, ok := session.HeadsQuestion(err); ok {
				// Ask rather than fail: the field that fixes it opens with
				// the possible counts, each one click from a reload.
				p.headChoices, p.headsDim = choices, dim
				p.fail(fmt.Errorf("%s does not say how many attention heads it has: choose the count under \"Attention heads\" in the Model panel", f.name))
				return
			}
			if err != nil {
				if opt.HeadData != nil { // the model loads again without the head that failed
					p.loadOpt.HeadName, p.loadOpt.HeadData = "", nil
				}
				p.fail(err)
				return
			}
			p.errText = ""
			p.notice = fmt.Sprintf("Loaded %s (%s) in %s.", f.name, sizeText(f.size), took.Round(time.Millisecond))
			if opt.HeadData != nil {
				p.notice += fmt.Sprintf(" Class embeddings from %s.", opt.HeadName)
			}
			p.setModel(m)
			p.analyze(ctx)
		})
	}
}

// loadHead reads a class-embedding head file and reloads the current model
// (the last checkpoint, or the demo) with it.
func (p *Page) loadHead(ctx app.Context, files []jsFile) {
	if len(files) == 0 {
		return
	}
	f := files[0]
	ctx.Async(func() {
		data, err := f.read()
		ctx.Dispatch(func(ctx app.Context) {
			if err != nil {
				p.fail(err)
				return
			}
			p.reloadWithHead(ctx, f.Name, data)
		})
	})
}

// reloadWithHead loads the current model again with a head file (nil data:
// without one). A head composes with the model's own head at load, so it
// always starts from the checkpoint.
func (p *Page) reloadWithHead(ctx app.Context, name string, data []byte) {
	p.loadOpt.HeadName, p.loadOpt.HeadData = name, data
	if p.lastFile != nil {
		p.loadModel(ctx, p.lastFile)
		return
	}
	opt := session.LoadOptions{HeadName: name, HeadData: data}
	p.busy = "Reading " + name + "…"
	p.jobs <- func() {
		m, err := p.eng.loadDemo(opt)
		ctx.Dispatch(func(ctx app.Context) {
			if err != nil {
				p.loadOpt.HeadName, p.loadOpt.HeadData = "", nil
				p.fail(err)
				return
			}
			p.errText, p.notice = "", ""
			if name != "" {
				p.notice = fmt.Sprintf("Class embeddings from %s.", name)
			}
			p.setModel(m)
			p.analyze(ctx)
		})
	}
}

// compareWith analyses m beside the loaded model from now on.
func (p *Page) compareWith(ctx app.Context, m *session.Model) {
	if old := p.compare; old != nil && old != m {
		p.jobs <- func() { p.eng.release(old) }
	}
	p.compare, p.analysis2 = m, nil
	p.errText, p.notice = "", ""
	p.analyze(ctx)
}

// loadCompareFile reads a checkpoint to compare with, with the loading
// options of the first model.
func (p *Page) loadCompareFile(ctx app.Context, files []jsFile) {
	opt := p.loadOpt
	opt.ConfigJSON = nil
	ctx.Async(func() {
		for _, f := range files {
			if !isCheckpoint(f.Name) {
				continue
			}
			p.jobs <- func() {
				m, _, err := p.eng.loadModel(f.Name, f.v, opt)
				ctx.Dispatch(func(ctx app.Context) {
					if _, choices, ok := session.HeadsQuestion(err); ok {
						p.fail(fmt.Errorf("second model: %s does not say how many attention heads it has: enter the count under \"Attention heads\" in the Model panel's loading options (one of %v) and pick it again", f.Name, choices))
						return
					}
					if err != nil {
						p.fail(fmt.Errorf("second model: %w", err))
						return
					}
					p.compareWith(ctx, m)
				})
			}
			return
		}
		ctx.Dispatch(func(app.Context) {
			p.fail(fmt.Errorf("no checkpoint (%s) among the files to compare with", checkpointExts))
		})
	})
}

// checkpointExts are the file name extensions of the checkpoints the app
// reads, as an <input accept> list.
const checkpointExts = ".safetensors,.pth,.pt,.bin,.ckpt"

func isCheckpoint(name string) bool {
	ext := strings.ToLower(path.Ext(name))
	return ext != "" && strings.Contains(checkpointExts+",", ext+",")
}

// loadFiles sorts picked or dropped files into model, config, class names
// and images.
func (p *Page) loadFiles(ctx app.Context, files []jsFile) {
	var model, config, classes, images []jsFile
	for _, f := range files {
		ext := strings.ToLower(path.Ext(f.Name))
		switch {
		case isCheckpoint(f.Name):
			model = append(model, f)
		case strings.EqualFold(f.Name, "config.json"):
			config = append(config, f)
		case ext == ".txt" || ext == ".json":
			classes = append(classes, f)
		default:
			images = append(images, f)
		}
	}
	if len(model) > 0 { // a head file belongs to the model it was loaded on
		p.loadOpt.HeadName, p.loadOpt.HeadData = "", nil
	}
	ctx.Async(func() {
		read := func(f jsFile) []byte {
			data, err := f.read()
			if err != nil {
				ctx.Dispatch(func(app.Context) { p.fail(err) })
			}
			return data
		}
		var cfg []byte
		if len(config) > 0 {
			cfg = read(config[0])
		}
		if len(model) > 0 {
			f := model[0]
			ctx.Dispatch(func(ctx app.Context) {
				p.loadModel(ctx, &modelFile{name: f.Name, blob: f.v, size: f.Size, config: cfg})
			})
		}
		for _, f := range classes {
			if data := read(f); data != nil {
				ctx.Dispatch(func(ctx app.Context) { p.setClasses(ctx, f.Name, data) })
			}
		}
		if len(images) > 0 {
			f := images[len(images)-1]
			p.jobs <- func() {
				img, err := p.eng.decode(f.Name, f.v)
				ctx.Dispatch(func(ctx app.Context) {
					if err != nil {
						p.fail(err)
						return
					}
					p.setImage(ctx, img)
				})
			}
		}
	})
}

func (p *Page) setImage(ctx app.Context, img *session.Image) {
	p.image = img
	p.keepUpload(img)
	p.settings.Drop = nil
	p.errText = ""
	p.analyze(ctx)
}

func (p *Page) setClasses(ctx app.Context, name string, data []byte) {
	if p.model == nil {
		return
	}
	// Class names follow jobs already queued (a model being loaded).
	p.jobs <- func() {
		ctx.Dispatch(func(ctx app.Context) {
			if err := p.model.SetClasses(name, data); err != nil {
				p.fail(err)
				return
			}
			p.errText = ""
			p.notice = fmt.Sprintf("Class names from %s.", name)
			p.analyze(ctx) // the views show names from the analysis' model
		})
	}
}

// loadURL downloads a checkpoint, with the config.json beside it when the
// URL is a Hugging Face resolve link.
func (p *Page) loadURL(ctx app.Context, url string) {
	url = strings.TrimSpace(url)
	if !strings.HasPrefix(url, "https://") && !strings.HasPrefix(url, "http://") {
		p.fail(fmt.Errorf("%q is not an http(s) URL", url))
		return
	}
	p.progress, p.progressText = 0, "Connecting…"
	ctx.Async(func() {
		blob, err := fetchBlob(url, func(done, total int64) {
			ctx.Dispatch(func(app.Context) {
				if total > 0 {
					p.progress = float64(done) / float64(total)
					p.progressText = fmt.Sprintf("%s of %s", sizeText(done), sizeText(total))
				} else {
					p.progress = 0
					p.progressText = sizeText(done)
				}
			})
		})
		var cfg []byte
		if err == nil && strings.Contains(url, "/resolve/") {
			cfgURL := url[:strings.LastIndex(url, "/")+1] + "config.json"
			cfg, _ = fetchBytes(cfgURL, func(int64, int64) {}) // optional
		}
		ctx.Dispatch(func(ctx app.Context) {
			p.progress, p.progressText = -1, ""
			if err != nil {
				p.fail(err)
				return
			}
			p.loadModel(ctx, &modelFile{name: urlFileName(url), blob: blob, size: int64(blob.Get("size").Float()), config: cfg})
		})
	})
}

// listenForDrops takes files dropped anywhere on the page. The listeners are
// plain JS callbacks, which run during the event: go-app's handlers run
// after it, too late for preventDefault, which is what allows a drop (on
// dragover) and stops the browser from opening the file (on drop).
func (p *Page) listenForDrops(ctx app.Context) {
	over := app.FuncOf(func(_ app.Value, args []app.Value) any {
		if len(args) > 0 {
			args[0].Call("preventDefault")
		}
		return nil
	})
	drop := app.FuncOf(func(_ app.Value, args []app.Value) any {
		if len(args) == 0 {
			return nil
		}
		args[0].Call("preventDefault")
		files := filesOf(args[0].Get("dataTransfer").Get("files"))
		if len(files) > 0 {
			ctx.Dispatch(func(ctx app.Context) { p.loadFiles(ctx, files) })
		}
		return nil
	})
	app.Window().Call("addEventListener", "dragover", over)
	app.Window().Call("addEventListener", "drop", drop)
}

// listenForPaste takes images pasted anywhere on the page.
func (p *Page) listenForPaste(ctx app.Context) {
	fn := app.FuncOf(func(_ app.Value, args []app.Value) any {
		if len(args) == 0 {
			return nil
		}
		files := filesOf(args[0].Get("clipboardData").Get("files"))
		if len(files) > 0 {
			args[0].Call("preventDefault")
			ctx.Dispatch(func(ctx app.Context) { p.loadFiles(ctx, files) })
		}
		return nil
	})
	app.Window().Call("addEventListener", "paste", fn)
}

func sizeText(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.0f kB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func (p *Page) Render() app.UI {
	var a *session.Analysis
	if p.analysis != nil {
		a = p.analysis
	}
	status := p.status
	if status == "" {
		status = "loading"
	}
	elapsed := ""
	if a != nil {
		elapsed = fmt.Sprintf("%.0f ms", float64(a.Elapsed.Microseconds())/1000)
	}
	return app.Div().Class("vl-app").Body(
		&Header{Backend: p.backendName, Note: p.backendNote, Elapsed: elapsed, Busy: p.busy,
			Progress: p.runProgress, Fraction: p.runFraction, Running: p.running},
		app.If(p.update, func() app.UI {
			return app.Div().Class("vl-banner vl-banner-info").Body(
				app.Span().Text("A new version of vitlens is ready."),
				app.Button().Class("vl-link").Text("Reload").OnClick(func(ctx app.Context, e app.Event) { ctx.Reload() }),
			)
		}),
		app.If(p.errText != "", func() app.UI {
			return app.Div().ID("vl-error").Class("vl-banner vl-banner-error").Aria("live", "assertive").Body(
				app.Span().Text(p.errText),
				app.Button().Class("vl-link").Text("Dismiss").OnClick(func(ctx app.Context, e app.Event) { p.errText = "" }),
			)
		}),
		app.Div().Class("vl-layout").Body(
			// On a narrow screen the controls fold into one button above
			// the results (the CSS hides the button on wide screens).
			app.Aside().ID("vl-side").Class(p.sideClass()).Aria("label", "Controls").Body(
				app.Button().ID("vl-controls-toggle").Class("vl-btn vl-controls-toggle").
					Aria("expanded", p.controls).Aria("controls", "vl-controls").
					Text(controlsText(p.controls)).
					OnClick(func(ctx app.Context, e app.Event) { p.controls = !p.controls }),
				app.Div().ID("vl-controls").Class("vl-controls").Body(
					p.renderModelPanel(),
					&ImagePanel{Samples: p.thumbs, Current: p.imageName()},
					p.renderInterventions(),
				),
			),
			app.Main().Class("vl-main").Body(p.renderMain(a)...),
		),
		p.renderState(status),
	)
}

// renderState is the page's state for scripts and tests. The analysis in it
// is the one every view shows: its JSON (all ranks, a task's worth of
// writing for a large model) is written with the last step, not the first.
func (p *Page) renderState(status string) app.UI {
	var a, compare *session.Analysis
	if l := p.later[numSteps-1]; l != nil && l == p.analysis {
		a = l.ThroughLens(p.tuned)
		if a2 := p.analysis2; a2 != nil && a2.Seq == a.Seq {
			compare = a2
		}
	}
	return &StateView{Status: status, Busy: p.busy, Error: p.errText, FirstMS: p.firstMS, Engine: p.engineWhere(),
		Progress: p.runProgress, Notice: p.notice, Backend: p.backendName, Analysis: a, Compare: compare}
}

func (p *Page) sideClass() string {
	if p.controls {
		return "vl-side"
	}
	return "vl-side vl-side-folded"
}

func controlsText(open bool) string {
	if open {
		return "Hide model, image and interventions"
	}
	return "Model, image and interventions…"
}

func (p *Page) imageName() string {
	if p.image == nil {
		return ""
	}
	return p.image.Name
}

func (p *Page) renderModelPanel() app.UI {
	mp := &ModelPanel{Progress: p.progress, ProgressText: p.progressText, Heads: p.loadOpt.Heads,
		NonStrict: p.loadOpt.NonStrict, CanReload: p.lastFile != nil, Notice: p.notice, HeadFile: p.loadOpt.HeadName,
		HeadChoices: p.headChoices, HeadsDim: p.headsDim, LensName: p.lensName, Tuned: p.tuned}
	for _, pr := range preprocess.Presets() {
		mp.Presets = append(mp.Presets, pr.Name)
	}
	if p.compare != nil {
		mp.Compare = p.compare.Name
	}
	if m := p.model; m != nil {
		mp.Name, mp.Facts, mp.Preset, mp.PresetNote = m.Name, m.Facts(), m.Preset.Name, m.Preset.Describe()
		mp.Classes = m.Model.Config.Classes
	}
	return mp
}

func (p *Page) renderInterventions() app.UI {
	iv := &Interventions{Edit: string(p.settings.Edit), Dropped: len(p.settings.Drop), Mode: p.mode,
		AllowGPU: p.allowGPU, Note: p.backendNote}
	if p.model != nil {
		iv.HasCLS = p.model.Model.Config.ClassToken
	}
	return iv
}

func (p *Page) renderMain(a *session.Analysis) []app.UI {
	if a == nil {
		return []app.UI{app.Div().Class("vl-card vl-empty").Body(
			app.Div().Class("vl-spinner"),
			app.P().Text(firstNonEmpty(p.busy, "Waiting for a model and an image…")),
		)}
	}
	c := a.Model.Model.Config
	block := min(p.block, c.Depth-1)
	a = a.ThroughLens(p.tuned) // the curve shows both lenses; every other view the chosen one
	// Rows wrap: side by side where the width allows, stacked on a phone.
	// A second model's comparison comes first: it is what was asked for.
	var compare app.UI
	if a2 := p.analysis2; a2 != nil && a2.Seq == a.Seq {
		compare = &CompareView{A: a, B: a2, Site: p.site}
	}
	// later is what step shows: nothing before its first task for this
	// model.
	later := func(step int) *session.Analysis {
		if l := p.later[step]; l != nil && l.Model == a.Model {
			return l
		}
		return nil
	}
	at := func(step int) *session.Analysis { return later(step).ThroughLens(p.tuned) }
	side := []app.UI{&PredictionView{A: a}}
	if l := later(stepCurve); l != nil {
		side = append(side, &CurveView{A: l, Site: p.site, Tuned: p.tuned})
	}
	views := []app.UI{
		compare,
		app.Div().Class("vl-row").Body(
			&OverlayView{A: a, Site: p.site, Block: block, Token: p.token, Mode: p.mode},
			app.Div().Class("vl-col").Body(side...),
		),
	}
	if l := at(stepHeatmap); l != nil {
		views = append(views, &HeatmapView{A: l, Site: p.site, Block: block, Token: p.token})
	}
	if l := at(stepAttention); l != nil {
		views = append(views, app.Div().Class("vl-row vl-row-fill").Body(
			p.attentionView(l),
			&ExplainView{A: l, X: p.explain},
		))
	}
	if l := at(stepMemory); l != nil {
		views = append(views, &MemoryView{A: l, Block: block, Token: p.token, Known: p.memKnown})
	}
	if l := at(stepDLA); l != nil {
		row := []app.UI{&DLAView{A: l, D: p.dla}}
		if l := at(stepPatch); l != nil {
			row = append(row, &PatchView{A: l, Samples: p.samples, Uploads: p.uploads, Current: p.image, Eng: p.eng})
		}
		views = append(views, app.Div().Class("vl-row vl-row-fill").Body(row...))
	}
	return views
}

// attentionView is the attention card of l with the token's rows the page
// has.
func (p *Page) attentionView(l *session.Analysis) *AttentionView {
	got := p.attention[attnKey{l.EngineID, runOf(l), p.token}]
	return &AttentionView{A: l, Token: p.token, Rows: got.rows, Err: got.err}
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// progressEvery is the least time between two progress updates.
const progressEvery = 250 * time.Millisecond

// noticeCancelled is the notice of a cancelled analysis, until the next
// one completes.
const noticeCancelled = "Analysis cancelled."

// progressText is an analysis's advance in words: "block 3 of 12", with
// the run when there are several (an intervention, a tuned lens).
func progressText(prefix string, pr engine.Progress) string {
	t := prefix
	if pr.Steps > 1 {
		t += fmt.Sprintf("run %d of %d", pr.Step, pr.Steps)
		if pr.Block > 0 {
			t += ", "
		}
	}
	if pr.Block > 0 {
		t += fmt.Sprintf("block %d of %d", pr.Block, pr.Depth)
	}
	return t
}

func (p *Page) engineWhere() string {
	if p.eng == nil {
		return ""
	}
	return p.eng.where()
}
