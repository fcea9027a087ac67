package app

import (
	"fmt"
	"strconv"

	"github.com/maxence-charriere/go-app/v10/pkg/app"
)

// ModelPanel shows the loaded model and every way to load another: file
// picker (or drop), URL with download progress, preprocessing preset,
// head-count override and class names.
type ModelPanel struct {
	app.Compo
	Name               string
	Facts              [][2]string
	Preset, PresetNote string
	Presets            []string
	Classes            int
	Heads              int
	HeadChoices        []int // asked for: the last checkpoint has no head count
	HeadsDim           int
	NonStrict          bool
	CanReload          bool
	Progress           float64 // 0..1 while downloading, -1 otherwise
	ProgressText       string
	Notice             string
	Compare            string // the second model's name, "" when none
	LensName           string // the tuned lens's file, "" when none
	Tuned              bool   // the views read through it
	HeadFile           string // the class-embedding head file in use, "" for the model's own head

	url string
}

func (m *ModelPanel) Render() app.UI {
	name := m.Name
	if name == "" {
		name = "no model yet"
	}
	return card("vl-model", "", "Model", nil,
		app.P().ID("vl-model-name").Class("vl-model-name").Title(name).Text(name),
		app.Dl().Class("vl-facts").Body(
			app.Range(m.Facts).Slice(func(i int) app.UI {
				return app.Div().Body(app.Dt().Text(m.Facts[i][0]), app.Dd().Text(m.Facts[i][1]))
			}),
		),
		app.Div().Class("vl-buttons").Body(
			app.Label().Class("vl-btn vl-btn-primary").Title("A .safetensors or PyTorch .pth/.pt checkpoint, optionally with its config.json").Body(
				app.Input().ID("vl-model-file").Type("file").Class("vl-file").Multiple(true).
					Accept(checkpointExts+",.json").OnChange(pickFiles),
				app.Text("Open model…"),
			),
			app.Label().Class("vl-btn").Title("A safetensors head: weight [classes, embedding] (e.g. CLIP zero-shot text embeddings or a linear probe, tools/make_head.py), read after the model's final norm and projection; class names from its metadata").Body(
				app.Input().ID("vl-head-file").Type("file").Class("vl-file").DataSet("action", actHeadFile).
					Accept(".safetensors").OnChange(pickFiles),
				app.Text("Load class embeddings…"),
			),
			app.Button().Class("vl-btn").Text("Demo model").Title("The bundled Fashion-MNIST ViT").
				OnClick(func(ctx app.Context, e app.Event) { ctx.NewAction(actDemo) }),
		),
		app.If(m.HeadFile != "", func() app.UI {
			return app.P().ID("vl-head-in-use").Class("vl-hint").Body(
				app.Text("Classes read through the class embeddings of "+m.HeadFile+". "),
				app.Button().Class("vl-link").Text("use the model's own head").
					OnClick(func(ctx app.Context, e app.Event) { ctx.NewAction(actHeadClear) }),
			)
		}),
		// Not a <form>: go-app runs handlers after the event, too late to
		// prevent a submission (which the CSP's form-action 'none' refuses).
		app.Div().Class("vl-url").Body(
			app.Input().ID("vl-model-url").Type("url").Placeholder("https://huggingface.co/…/resolve/main/model.safetensors").
				Value(m.url).OnInput(func(ctx app.Context, e app.Event) { m.url = ctx.JSSrc().Get("value").String() }).
				OnKeyDown(func(ctx app.Context, e app.Event) {
					if e.Get("key").String() == "Enter" {
						m.onURL(ctx, e)
					}
				}),
			app.Button().ID("vl-url-load").Class("vl-btn").Text("Load").OnClick(m.onURL),
		),
		app.Div().Class("vl-field").Body(
			app.Span().Class("vl-label").Text("Compare on the same image with"),
			app.Div().Class("vl-buttons").Body(
				app.Button().ID("vl-compare-random").Class("vl-btn").Text("Random init of this one").
					Title("The same architecture with timm's initialisation (seed 0): the paper's baseline").
					OnClick(func(ctx app.Context, e app.Event) { ctx.NewAction(actCompareRnd) }),
				app.Label().Class("vl-btn").Title("A second checkpoint, e.g. B/16 beside B/32").Body(
					app.Input().ID("vl-compare-file").Type("file").Class("vl-file").DataSet("action", actCompareFile).
						Accept(checkpointExts).OnChange(pickFiles),
					app.Text("Second model…"),
				),
			),
			app.If(m.Compare != "", func() app.UI {
				return app.P().ID("vl-comparing").Class("vl-hint").Body(
					app.Text("Comparing with "+m.Compare+". "),
					app.Button().Class("vl-link").Text("stop comparing").
						OnClick(func(ctx app.Context, e app.Event) { ctx.NewAction(actCompareStop) }),
				)
			}),
		),
		app.Div().Class("vl-field").Body(
			app.Span().Class("vl-label").Text("Lens"),
			app.Div().Class("vl-buttons").Body(
				app.Label().Class("vl-btn").Title("translators.safetensors from vitlens tune-lens, fitted for this model").Body(
					app.Input().ID("vl-lens-file").Type("file").Class("vl-file").DataSet("action", actLensFile).
						Accept(".safetensors").OnChange(pickFiles),
					app.Text("Tuned lens…"),
				),
			),
			app.If(m.LensName != "", func() app.UI {
				return app.Div().ID("vl-lens").Class("vl-hint").Body(
					app.Label().Class("vl-check").Body(
						app.Input().ID("vl-lens-tuned").Type("checkbox").Checked(m.Tuned).OnChange(func(ctx app.Context, e app.Event) {
							ctx.NewActionWithValue(actLensTuned, ctx.JSSrc().Get("checked").Bool())
						}),
						app.Text("Read hs and hs_mid through the tuned lens "+m.LensName+" (attn and mlp keep the plain lens)"),
					),
					app.Button().Class("vl-link").Text("remove").
						OnClick(func(ctx app.Context, e app.Event) { ctx.NewAction(actLensRemove) }),
				)
			}),
		),
		app.If(m.Progress >= 0, func() app.UI {
			return app.Div().Class("vl-progress").Body(
				app.Progress().ID("vl-download").Max(1).Value(fmt.Sprintf("%.3f", m.Progress)),
				app.Span().Text(m.ProgressText),
			)
		}),
		app.Div().Class("vl-field").Body(
			app.Label().For("vl-preset").Text("Preprocessing"),
			app.Select().ID("vl-preset").OnChange(func(ctx app.Context, e app.Event) {
				ctx.NewActionWithValue(actPreset, ctx.JSSrc().Get("value").String())
			}).Body(
				app.Range(m.Presets).Slice(func(i int) app.UI {
					return selectOption(m.Presets[i], m.Presets[i], m.Presets[i] == m.Preset)
				}),
			),
		),
		app.P().Class("vl-hint").Text(m.PresetNote),
		app.Details().Class("vl-advanced").Open(len(m.HeadChoices) > 0).Body(
			app.Summary().Text("Loading options and class names"),
			app.If(len(m.HeadChoices) > 0, func() app.UI {
				return app.Div().ID("vl-heads-ask").Class("vl-ask").Aria("live", "polite").Body(
					app.P().Text(fmt.Sprintf("This checkpoint does not say how many attention heads it has. Its width %d allows these counts (the usual head size is 64):", m.HeadsDim)),
					app.Div().Class("vl-buttons").Body(
						app.Range(m.HeadChoices).Slice(func(i int) app.UI {
							h := m.HeadChoices[i]
							return app.Button().Class("vl-btn vl-heads-choice").DataSet("heads", h).
								Text(fmt.Sprintf("%d (head size %d)", h, m.HeadsDim/h)).
								Aria("label", fmt.Sprintf("Load with %d attention heads of size %d", h, m.HeadsDim/h)).
								OnClick(onHeadsChoice)
						}),
					),
				)
			}),
			app.Div().Class("vl-field").Body(
				app.Label().For("vl-heads").Text("Attention heads"),
				app.Input().ID("vl-heads").Type("number").Min(0).Max(128).Placeholder("from checkpoint").
					Value(headsValue(m.Heads)).OnChange(func(ctx app.Context, e app.Event) {
					n, _ := strconv.Atoi(ctx.JSSrc().Get("value").String())
					ctx.NewActionWithValue(actHeads, max(n, 0))
				}),
			),
			app.Label().Class("vl-check").Body(
				app.Input().Type("checkbox").Checked(m.NonStrict).OnChange(func(ctx app.Context, e app.Event) {
					ctx.NewActionWithValue(actNonStrict, ctx.JSSrc().Get("checked").Bool())
				}),
				app.Text("Skip unknown tensors (e.g. DeiT refinement heads)"),
			),
			app.Button().ID("vl-reload").Class("vl-btn").Disabled(!m.CanReload).Text("Reload with these options").
				OnClick(func(ctx app.Context, e app.Event) { ctx.NewAction(actReload) }),
			app.Div().Class("vl-buttons").Body(
				app.Label().Class("vl-btn").Title("Text (one name per line) or JSON (list, or id2label)").Body(
					app.Input().ID("vl-classes-file").Type("file").Class("vl-file").Accept(".txt,.json").OnChange(pickFiles),
					app.Text("Class names…"),
				),
				app.If(m.Classes == 1000, func() app.UI {
					return app.Button().Class("vl-btn").Text("ImageNet-1k names").
						OnClick(func(ctx app.Context, e app.Event) { ctx.NewAction(actImageNet) })
				}),
			),
		),
		app.If(m.Notice != "", func() app.UI {
			return app.P().ID("vl-notice").Class("vl-notice").Text(m.Notice)
		}),
	)
}

// onHeadsChoice reloads the checkpoint with the head count of the button
// (read from data-heads: one named handler, see exportButton).
func onHeadsChoice(ctx app.Context, e app.Event) {
	if n, err := strconv.Atoi(ctx.JSSrc().Get("dataset").Get("heads").String()); err == nil && n > 0 {
		ctx.NewActionWithValue(actHeadsLoad, n)
	}
}

func headsValue(n int) string {
	if n <= 0 {
		return ""
	}
	return strconv.Itoa(n)
}

func (m *ModelPanel) onURL(ctx app.Context, e app.Event) {
	ctx.NewActionWithValue(actURL, m.url)
}

// pickFiles hands the files of an <input type=file> to the page, as the
// input's data-action says (actFiles by default), and clears the input so
// the same file can be picked again.
func pickFiles(ctx app.Context, e app.Event) {
	files := filesOf(ctx.JSSrc().Get("files"))
	ctx.JSSrc().Set("value", "")
	action := actFiles
	if v := ctx.JSSrc().Get("dataset").Get("action"); v.Truthy() {
		action = v.String()
	}
	if len(files) > 0 {
		ctx.NewActionWithValue(action, files)
	}
}
