package app

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"vitlens/app/engine"
	"vitlens/app/session"
	"vitlens/vit"
)

// Actions the views raise; Page handles them all here. Views never change
// state themselves.
const (
	actPatch       = "vl.patch"       // int: token clicked on the image
	actCell        = "vl.cell"        // [2]int: block, token clicked on the heat-map
	actBlock       = "vl.block"       // int
	actSite        = "vl.site"        // string
	actTarget      = "vl.target"      // int, -1 = predicted
	actEdit        = "vl.edit"        // string
	actMode        = "vl.mode"        // string
	actClearDrops  = "vl.clear-drops" // nil
	actSample      = "vl.sample"      // int
	actFiles       = "vl.files"       // []jsFile
	actURL         = "vl.url"         // string
	actPreset      = "vl.preset"      // string
	actHeads       = "vl.heads"       // int
	actHeadsLoad   = "vl.heads-load"  // int: reload the last checkpoint with this head count
	actNonStrict   = "vl.non-strict"  // bool
	actReload      = "vl.reload"      // nil
	actDemo        = "vl.demo"        // nil
	actImageNet    = "vl.imagenet"    // nil
	actBackend     = "vl.backend"     // string: auto or cpu
	actExport      = "vl.export"      // string: what to export
	actDismissNote = "vl.dismiss"     // nil
	actCompareRnd  = "vl.compare-rnd" // nil: compare with a random init of the model
	actCompareFile = "vl.compare"     // []jsFile: compare with another checkpoint
	actCompareStop = "vl.compare-off" // nil
	actLensFile    = "vl.lens"        // []jsFile: a tuned lens's translators.safetensors
	actLensTuned   = "vl.lens-tuned"  // bool: read through the tuned lens (else the plain one)
	actLensRemove  = "vl.lens-off"    // nil
	actHeadFile    = "vl.head"        // []jsFile: class embeddings for the loaded model
	actHeadClear   = "vl.head-off"    // nil: back to the model's own head
	actCancel      = "vl.cancel"      // nil: stop the analysis in flight
	actExplain     = "vl.explain"     // nil: compute the explanation maps of a large model
	actMemories    = "vl.memories"    // memoriesWanted: value classes the memories card lacks
	actAttention   = "vl.attention"   // attentionWanted: the rows the attention card lacks
)

func (p *Page) handleActions(ctx app.Context) {
	on := func(name string, h func(ctx app.Context, v any)) {
		ctx.Handle(name, func(ctx app.Context, a app.Action) { h(ctx, a.Value) })
	}
	on(actPatch, func(ctx app.Context, v any) { p.clickToken(ctx, v.(int)) })
	on(actCell, func(ctx app.Context, v any) {
		bt := v.([2]int)
		p.block, p.token = bt[0], bt[1]
	})
	on(actBlock, func(ctx app.Context, v any) { p.block = v.(int) })
	on(actSite, func(ctx app.Context, v any) {
		if s, err := vit.ParseSite(v.(string)); err == nil {
			p.site = s
		}
	})
	on(actTarget, func(ctx app.Context, v any) {
		p.settings.Target = v.(int)
		p.analyze(ctx)
	})
	on(actEdit, func(ctx app.Context, v any) {
		e, err := vit.ParseAttnEdit(v.(string))
		if err != nil {
			p.fail(err)
			return
		}
		p.settings.Edit = e
		p.analyze(ctx)
	})
	on(actMode, func(ctx app.Context, v any) { p.mode = v.(string) })
	on(actClearDrops, func(ctx app.Context, v any) {
		p.settings.Drop = nil
		p.analyze(ctx)
	})
	on(actSample, func(ctx app.Context, v any) {
		if i := v.(int); i >= 0 && i < len(p.samples) {
			p.setImage(ctx, p.samples[i])
		}
	})
	on(actFiles, func(ctx app.Context, v any) { p.loadFiles(ctx, v.([]jsFile)) })
	on(actURL, func(ctx app.Context, v any) { p.loadURL(ctx, v.(string)) })
	on(actPreset, func(ctx app.Context, v any) {
		if p.model == nil {
			return
		}
		if err := p.model.SetPreset(v.(string)); err != nil {
			p.fail(err)
			return
		}
		p.inputs = map[*session.Image]*session.Input{}
		p.analyze(ctx)
	})
	on(actHeads, func(ctx app.Context, v any) { p.loadOpt.Heads = v.(int) })
	on(actHeadsLoad, func(ctx app.Context, v any) {
		p.loadOpt.Heads = v.(int)
		if p.lastFile != nil {
			p.loadModel(ctx, p.lastFile)
		}
	})
	on(actNonStrict, func(ctx app.Context, v any) { p.loadOpt.NonStrict = v.(bool) })
	on(actHeadFile, func(ctx app.Context, v any) { p.loadHead(ctx, v.([]jsFile)) })
	on(actHeadClear, func(ctx app.Context, v any) { p.reloadWithHead(ctx, "", nil) })
	on(actReload, func(ctx app.Context, v any) {
		if p.lastFile != nil {
			p.loadModel(ctx, p.lastFile)
		}
	})
	on(actDemo, func(ctx app.Context, v any) {
		p.jobs <- func() {
			m, err := p.eng.loadDemo(session.LoadOptions{})
			ctx.Dispatch(func(ctx app.Context) {
				if err != nil {
					p.fail(err)
					return
				}
				p.errText, p.lastFile = "", nil
				p.loadOpt.HeadName, p.loadOpt.HeadData = "", nil
				p.setModel(m)
				if len(p.samples) > 0 {
					p.image = p.samples[0]
				}
				p.analyze(ctx)
			})
		}
	})
	on(actImageNet, func(ctx app.Context, v any) {
		if p.model == nil {
			return
		}
		if err := p.model.UseImageNetClasses(); err != nil {
			p.fail(err)
			return
		}
		p.analyze(ctx)
	})
	on(actBackend, func(ctx app.Context, v any) {
		p.allowGPU = v.(string) != "cpu"
		p.analyze(ctx)
	})
	on(actExport, func(ctx app.Context, v any) { p.export(ctx, v.(string)) })
	on(actDismissNote, func(ctx app.Context, v any) { p.notice = "" })
	on(actCompareRnd, func(ctx app.Context, v any) {
		if p.model == nil {
			return
		}
		m := p.model
		p.busy = "Initialising a random " + m.Name + "…"
		p.jobs <- func() {
			r, err := p.eng.randomInit(m)
			ctx.Dispatch(func(ctx app.Context) {
				p.busy = ""
				if err != nil {
					p.fail(err)
					return
				}
				if p.model == m {
					p.compareWith(ctx, r)
				}
			})
		}
	})
	on(actCompareFile, func(ctx app.Context, v any) { p.loadCompareFile(ctx, v.([]jsFile)) })
	on(actCompareStop, func(ctx app.Context, v any) {
		p.compare, p.analysis2, p.notice = nil, nil, ""
	})
	// Cancel runs at once, not after the job it stops.
	on(actCancel, func(ctx app.Context, v any) { p.eng.cancel() })
	on(actExplain, func(ctx app.Context, v any) { p.explainNow(ctx) })
	on(actLensFile, func(ctx app.Context, v any) { p.loadLens(ctx, v.([]jsFile)) })
	on(actLensTuned, func(ctx app.Context, v any) { p.tuned = v.(bool) })
	on(actLensRemove, func(ctx app.Context, v any) {
		p.lens, p.lensName, p.tuned = nil, "", false
		p.analyze(ctx)
	})
	on(actMemories, func(ctx app.Context, v any) {
		w := v.(memoriesWanted)
		p.fetchMemories(ctx, w.model, w.keys, nil)
	})
	on(actAttention, func(ctx app.Context, v any) {
		w := v.(attentionWanted)
		p.fetchAttention(ctx, w.a, w.token, nil)
	})
}

// clickToken inspects a token, or drops/restores it in drop mode.
func (p *Page) clickToken(ctx app.Context, t int) {
	if p.model == nil {
		return
	}
	c := p.model.Model.Config
	if p.mode != modeDrop {
		p.token = t
		return
	}
	if t < c.FirstImageToken() {
		p.fail(fmt.Errorf("%s cannot be dropped: only patches can", session.TokenLabel(c, t)))
		return
	}
	next := p.settings.Toggle(t)
	if _, err := session.Keep(c, next.Drop); err != nil {
		p.fail(err)
		return
	}
	p.settings = next
	if slices.Contains(next.Drop, p.token) {
		p.token = 0
	}
	p.analyze(ctx)
}

// export downloads a table or a figure of the current analysis.
func (p *Page) export(ctx app.Context, what string) {
	a := p.analysis
	if a == nil {
		return
	}
	base := strings.TrimSuffix(a.Image.Name, pathExt(a.Image.Name))
	csv := func(name string, data []byte, err error) {
		if err != nil {
			p.fail(err)
			return
		}
		download(base+"-"+name+".csv", "text/csv", data)
	}
	switch what {
	case "readouts":
		csv("readouts", a.ReadoutsCSV(), nil)
	case "predictions":
		csv("predictions", a.PredictionsCSV(), nil)
	case "curve":
		csv("identifiability-"+p.site.String(), a.CurveCSV(p.site), nil)
	case "memories":
		// Every block's memories of the token: the classes the page does
		// not know yet come from the engine first.
		token := p.token
		blocks := make([]int, a.Model.Model.Config.Depth)
		for b := range blocks {
			blocks[b] = b
		}
		var keys []session.MemoryKey
		if pos := session.Position(a.Current(), token); pos >= 0 { // else MemoriesCSV says it was dropped
			var err error
			if keys, err = a.Model.MissingClasses(a.CurrentMemories(), blocks, pos); err != nil {
				csv("", nil, err)
				return
			}
		}
		p.fetchMemories(ctx, a.Model, keys, func(ctx app.Context) {
			data, err := a.MemoriesCSV(token)
			csv(fmt.Sprintf("memories-token%d", token), data, err)
		})
	case "attention":
		// The engine keeps the maps: the token's rows come from it first
		// unless the page has them.
		token := p.token
		p.fetchAttention(ctx, a, token, func(ctx app.Context) {
			got := p.attention[attnKey{a.EngineID, runOf(a), token}]
			if got.err != "" {
				csv("", nil, errors.New(got.err))
				return
			}
			data, err := a.AttentionCSV(got.rows)
			csv(fmt.Sprintf("attention-token%d", token), data, err)
		})
	case "compare":
		if b := p.analysis2; b != nil {
			csv("compare-readouts", session.CompareCSV(a, b), nil)
		}
	case "summary":
		download(base+"-summary.json", "application/json", a.SummaryJSON())
	case "activations":
		// The engine runs the forward and writes the file; the page saves
		// the Blob it sends without reading it.
		p.jobs <- func() {
			blob, err := p.eng.activations(a.Model, a.Input, a.Image.Name)
			ctx.Dispatch(func(app.Context) {
				if err != nil {
					p.fail(err)
					return
				}
				saveBlob(base+"-activations.safetensors", blob)
			})
		}
	default:
		// png:<element id>[/<file name>]
		if fig, ok := strings.CutPrefix(what, "png:"); ok {
			fig, name, named := strings.Cut(fig, "/")
			if !named {
				name = strings.TrimPrefix(fig, "fig-")
			}
			ctx.Async(func() {
				if err := savePNG(fig, base+"-"+name+".png"); err != nil {
					ctx.Dispatch(func(app.Context) { p.fail(err) })
				}
			})
		}
	}
}

// memoriesWanted are value classes of memories the memories card shows
// and m (weightless) does not know.
type memoriesWanted struct {
	model *session.Model
	keys  []session.MemoryKey
}

// fetchMemories asks the engine for the value classes of keys that m does
// not know and is not waiting for, keeps them in m, and then runs then (if
// not nil) on the UI goroutine. The memories card redraws with them.
func (p *Page) fetchMemories(ctx app.Context, m *session.Model, keys []session.MemoryKey, then func(app.Context)) {
	if p.memAsked == nil {
		p.memAsked = map[session.MemoryKey]*session.Model{}
	}
	var ask []session.MemoryKey
	for _, k := range keys {
		if p.memAsked[k] != m {
			p.memAsked[k] = m
			ask = append(ask, k)
		}
	}
	if len(ask) == 0 && then == nil {
		return
	}
	p.jobs <- func() {
		var classes [][]int32
		var err error
		if len(ask) > 0 {
			classes, err = p.eng.memoryClasses(m, ask)
		}
		ctx.Dispatch(func(ctx app.Context) {
			for _, k := range ask {
				if p.memAsked[k] == m {
					delete(p.memAsked, k)
				}
			}
			if err != nil {
				p.fail(fmt.Errorf("memories: %w", err))
				return
			}
			m.SetValueClasses(ask, classes)
			p.memKnown++
			if then != nil {
				then(ctx)
			}
		})
	}
}

// attnKey names a token's attention rows in one run (0: Base, 1: After)
// of the engine's analysis of.
type attnKey struct{ of, run, token int }

// attnRows is what the page has of a key: the rows, or why there are none.
type attnRows struct {
	rows *session.AttentionRows
	err  string
}

// runOf is the run of a the views show: 1 (After) when there is one.
func runOf(a *session.Analysis) int {
	if a.After != nil {
		return 1
	}
	return 0
}

// putAttention keeps an engine's answer for token in analysis of (with the
// analysis or asked after it): rows by run, or err for each. Malformed rows
// are kept as their error, so that no view indexes them.
func (p *Page) putAttention(of, token int, rows []*session.AttentionRows, err error) {
	if p.attention == nil {
		p.attention = map[attnKey]attnRows{}
	}
	for run := range 2 {
		k := attnKey{of, run, token}
		switch {
		case err != nil:
			p.attention[k] = attnRows{err: err.Error()}
		case run < len(rows) && rows[run] != nil:
			if bad := rows[run].Check(); bad != nil {
				p.attention[k] = attnRows{err: bad.Error()}
			} else {
				p.attention[k] = attnRows{rows: rows[run]}
			}
		}
	}
}

// attentionWanted is a token's rows the attention card lacks.
type attentionWanted struct {
	a     *session.Analysis
	token int
}

// fetchAttention asks the engine for token's rows in a's runs unless the
// page has them or asked already, then runs then (if any) on the UI
// goroutine.
func (p *Page) fetchAttention(ctx app.Context, a *session.Analysis, token int, then func(app.Context)) {
	k := attnKey{a.EngineID, runOf(a), token}
	if _, ok := p.attention[k]; ok {
		if then != nil {
			then(ctx)
		}
		return
	}
	if p.attnAsked[k] {
		if then != nil { // after the answer asked for, which the jobs before this one wait for
			p.jobs <- func() {
				ctx.Dispatch(func(ctx app.Context) {
					if _, ok := p.attention[k]; ok {
						then(ctx)
					}
				})
			}
		}
		return
	}
	if p.attnAsked == nil {
		p.attnAsked = map[attnKey]bool{}
	}
	p.attnAsked[k] = true
	p.jobs <- func() {
		rows, err := p.eng.attention(a, token)
		ctx.Dispatch(func(ctx app.Context) {
			delete(p.attnAsked, k)
			if p.analysis == nil || p.analysis.EngineID != a.EngineID {
				return // a newer analysis: these rows are not shown
			}
			p.putAttention(a.EngineID, token, rows, err)
			if then != nil {
				then(ctx)
			}
		})
	}
}

func pathExt(name string) string {
	if i := strings.LastIndex(name, "."); i > 0 {
		return name[i:]
	}
	return ""
}

// explainNow computes the current analysis's explanation maps, which a
// large model's analysis leaves out until asked.
func (p *Page) explainNow(ctx app.Context) {
	a := p.analysis
	if a == nil {
		return
	}
	p.explain = &engine.Explanation{} // neither maps nor an error: computing
	p.jobs <- func() {
		x := p.eng.explain(a.Model, a.Input, a.Base.Target)
		ctx.Dispatch(func(app.Context) {
			if p.analysis == a {
				p.explain = x
			}
		})
	}
}
