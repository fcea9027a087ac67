package figures

import (
	"fmt"
	"os"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"

	"vitlens/vit/tunedlens"
)

// tuneLensKind is the Kind of a `vitlens tune-lens` output folder, which
// holds tuned_lens.json instead of a results manifest.
const tuneLensKind = "tune-lens"

// loadTunedLens reads a tune-lens folder, or returns nil when dir has no
// tuned_lens.json.
func loadTunedLens(dir string) (*Run, error) {
	var rep tunedlens.Report
	if found, err := readFolderJSON(dir, "tuned_lens.json", &rep); !found || err != nil {
		return nil, err
	}
	if len(rep.Blocks) == 0 {
		return nil, fmt.Errorf("%s: tuned_lens.json has no blocks", dir)
	}
	r := folderRun(dir, tuneLensKind)
	r.TunedLens = &rep
	return r, nil
}

// readFolderJSON decodes dir/name into v, the file of a command's output
// folder that has no results manifest; found is false when there is none.
func readFolderJSON(dir, name string, v any) (found bool, err error) {
	data, err := os.ReadFile(filepath.Join(dir, name))
	if os.IsNotExist(err) {
		return false, nil
	}
	if err != nil {
		return true, err
	}
	if err := decodeNaN(data, v); err != nil {
		return true, fmt.Errorf("%s: %s: %w", dir, name, err)
	}
	return true, nil
}

// folderRun is the Run of such a folder, labelled by its name.
func folderRun(dir, kind string) *Run {
	r := &Run{Dir: dir, Label: filepath.Base(filepath.Clean(dir))}
	r.Manifest.Experiment = kind
	return r
}

// tunedLensSection compares the plain and the tuned lens on held-out
// images: identifiability, top-1 and KL to the last block, per block.
func tunedLensSection(runs []*Run) *Section {
	s := &Section{Title: "Tuned lens",
		Intro: "Held-out images read through the plain lens (the model's final LayerNorm and head, solid) and through per-block translators fitted by `vitlens tune-lens` (dashed), at hs."}
	for _, r := range runs {
		s.Figures = append(s.Figures, tunedLensCurves(r))
		t := Table{Title: "tuned lens, held-out, hs: " + r.Label,
			Header: []string{"block", "kl_plain", "kl_tuned", "ident_plain", "ident_tuned", "top1_plain", "top1_tuned"}}
		for _, b := range r.TunedLens.Blocks {
			t.Rows = append(t.Rows, []string{fmt.Sprint(b.Block + 1), num(b.KLPlain), num(b.KLTuned), num(b.IdentPlain), num(b.IdentTuned), num(b.Top1Plain), num(b.Top1Tuned)})
		}
		s.Tables = append(s.Tables, t)
	}
	return s
}

func tunedLensCurves(r *Run) *Figure {
	blocks := r.TunedLens.Blocks
	xs := blocksX(len(blocks))
	var ip, it, kp, kt []float64
	for _, b := range blocks {
		ip, it = append(ip, b.IdentPlain), append(it, b.IdentTuned)
		kp, kt = append(kp, b.KLPlain), append(kt, b.KLTuned)
	}
	ident := newPlot("identifiability of the true class: "+r.Label, "block", "mean r")
	hline(ident, 0.5, "", colorAt(7))
	line(ident, "plain lens", xs, ip, colorAt(0), false)
	line(ident, "tuned lens", xs, it, colorAt(1), true)
	ident.X.Tick.Marker = blockTicks(len(blocks))
	ident.Legend.Top, ident.Legend.Left = false, false
	kl := newPlot("KL(last block ‖ lens), nats: "+r.Label, "block", "mean KL")
	line(kl, "plain lens", xs, kp, colorAt(0), false)
	line(kl, "tuned lens", xs, kt, colorAt(1), true)
	kl.X.Tick.Marker = blockTicks(len(blocks))
	kl.Legend.Top = true
	return &Figure{Name: "tuned_lens-" + r.Label, Title: "plain and tuned lens: " + r.Label,
		Caption: fmt.Sprintf("Held-out images (%d; fit on %d with --fit %s): mean identifiability r = 1 − rank/C of the true class over every token (left; dashed grey: chance) and mean KL from the last block's distribution of the same token (right), plain lens solid, tuned dashed.",
			r.TunedLens.HeldOut, r.TunedLens.Train, r.TunedLens.Fit),
		Rows: 1, Cols: 2, Panels: []*plot.Plot{ident, kl}, Width: 24 * vg.Centimeter, Height: 9 * vg.Centimeter}
}
