package app

import (
	"fmt"
	"strconv"
	"time"

	"github.com/maxence-charriere/go-app/v10/pkg/app"

	"vitlens/app/figure"
	"vitlens/app/session"
)

// PatchView is activation patching in the page: the current image is the
// clean one, a sample picked here the corrupted one. Every head of every
// block (attn.hook_z) of the corrupted image is patched with the clean
// image's in turn; the map shows how far each moves the clean class's logit,
// and clicking a cell runs that patch again to show the class's rank and
// logit move. It runs on the CPU (vit/patching), whatever the backend.
type PatchView struct {
	app.Compo
	A       *session.Analysis
	Samples []*session.Image

	corrupt int // index into Samples, -1 until picked
	seq     int // the analysis hp belongs to
	hp      *session.HeadPatching
	err     error
	elapsed time.Duration
	cell    string    // what the last clicked cell did
	cellAt  [4]string // its block, head, rank (0 is the top) and logit, for tests
}

func (pv *PatchView) OnInit() { pv.corrupt = -1 }

func (pv *PatchView) Render() app.UI {
	a := pv.A
	opts := []app.UI{selectOption("-1", "pick a corrupted image…", pv.corrupt < 0)}
	for i, s := range pv.Samples {
		opts = append(opts, selectOption(strconv.Itoa(i), sampleLabel(s.Name), i == pv.corrupt))
	}
	picker := app.Label().Class("vl-field").Body(app.Text("Corrupted image "),
		app.Select().ID("vl-corrupt").OnChange(pv.onPick).Body(opts...))
	hint := app.P().Class("vl-hint").Text("The current image is the clean one. Each head of each block of the corrupted image " +
		"gets the clean image's output of that head (attn.hook_z); the map shows how far that moves the clean class's logit " +
		"(red: towards the clean image). Click a cell to see the class's rank and logit with that head patched. " +
		"Runs on the CPU, whichever backend is chosen.")
	title := "Activation patching"
	if pv.corrupt < 0 || pv.corrupt >= len(pv.Samples) {
		return card("vl-patch", "", title, nil, hint, picker)
	}
	if pv.seq != a.Seq || (pv.hp == nil && pv.err == nil) {
		pv.seq, pv.cell, pv.cellAt = a.Seq, "", [4]string{}
		start := time.Now()
		pv.hp, pv.err = nil, nil
		in, err := a.Model.Prepare(pv.Samples[pv.corrupt])
		if err == nil {
			pv.hp, err = session.PatchHeads(a.Model.Model, a.Input.Pixels, in.Pixels)
		}
		pv.err, pv.elapsed = err, time.Since(start)
	}
	if pv.err != nil {
		return card("vl-patch", "", title, nil, hint, picker, app.P().Class("vl-banner vl-banner-error").Text(pv.err.Error()))
	}
	hp := pv.hp
	grid := figure.SignedGrid{Title: "Patched logit minus corrupted logit of " + className(a, hp.Target), Values: hp.Effect,
		RowName: "block", ColName: "head", Unit: "logit"}
	return card("vl-patch", "", title, nil, hint, picker,
		app.P().ID("vl-patch-base").Text(fmt.Sprintf("%s: clean logit %.4f (rank %d), corrupted %.4f (rank %d); %d patches in %v.",
			className(a, hp.Target), hp.CleanLogit, hp.CleanRank+1, hp.CorruptLogit, hp.CorruptRank+1,
			len(hp.Effect)*len(hp.Effect[0]), pv.elapsed.Round(time.Millisecond))),
		app.Div().Class("vl-scroll").OnClick(pv.onCell).Body(figureBox("fig-patch", grid.SVG())),
		app.P().ID("vl-patch-cell").Aria("live", "polite").DataSet("block", pv.cellAt[0]).DataSet("head", pv.cellAt[1]).
			DataSet("rank", pv.cellAt[2]).DataSet("logit", pv.cellAt[3]).Text(pv.cell),
	)
}

func (pv *PatchView) onPick(ctx app.Context, e app.Event) {
	i, err := strconv.Atoi(ctx.JSSrc().Get("value").String())
	if err != nil {
		i = -1
	}
	pv.corrupt, pv.hp, pv.err = i, nil, nil
}

func (pv *PatchView) onCell(ctx app.Context, e app.Event) {
	b, ok1 := dataInt(e, "row")
	h, ok2 := dataInt(e, "col")
	if !ok1 || !ok2 || pv.hp == nil {
		return
	}
	rank, logit, err := pv.hp.Cell(b, h)
	if err != nil {
		pv.cell = err.Error()
		return
	}
	pv.cell = fmt.Sprintf("block %d head %d patched: rank %d → %d, logit %.4f → %.4f", b, h,
		pv.hp.CorruptRank+1, rank+1, pv.hp.CorruptLogit, logit)
	pv.cellAt = [4]string{strconv.Itoa(b), strconv.Itoa(h), strconv.Itoa(rank), strconv.FormatFloat(logit, 'g', -1, 64)}
}
