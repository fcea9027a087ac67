package figures

import (
	"fmt"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"vitlens/vit/dla"
	"vitlens/vit/patching"
)

// dlaKind is the Kind of a `vitlens dla --out` folder, which holds dla.json
// instead of a results manifest.
const dlaKind = "dla"

// loadDLA reads a dla folder, or returns nil when dir has no dla.json.
func loadDLA(dir string) (*Run, error) {
	var s dla.Summary
	if found, err := readFolderJSON(dir, dla.SummaryFile, &s); !found || err != nil {
		return nil, err
	}
	if len(s.Heads) == 0 || len(s.Heads[0]) == 0 || len(s.MLP) != len(s.Heads) || len(s.AttnBias) != len(s.Heads) {
		return nil, fmt.Errorf("%s: %s has no heads × blocks grid, or its mlp and attn_bias do not have one value per block", dir, dla.SummaryFile)
	}
	r := folderRun(dir, dlaKind)
	r.DLA = &s
	return r, nil
}

// dlaSection draws each dla folder's heads × blocks grid and tabulates every
// part's mean share of the target logit, block by block.
func dlaSection(runs []*Run) *Section {
	s := &Section{Title: "Direct logit attribution",
		Intro: "`vitlens dla`: the target class's logit split into the embeddings, every attention head and MLP of every block, and the head's bias term, read through the final LayerNorm with its scale frozen at the final residual's statistics (the parts sum to the logit). Blocks are numbered from 0, as in the hook names."}
	for _, r := range runs {
		d := r.DLA
		s.Figures = append(s.Figures, dlaGrid(r))
		heads := len(d.Heads[0])
		header := []string{"block"}
		for h := range heads {
			header = append(header, "head "+strconv.Itoa(h))
		}
		header = append(header, "attn bias", "mlp")
		t := Table{Title: fmt.Sprintf("direct logit attribution, mean over %d images: %s", len(d.Images), r.Label), Header: header}
		for b, row := range d.Heads {
			cells := []string{strconv.Itoa(b)}
			for _, v := range row {
				cells = append(cells, num(v))
			}
			t.Rows = append(t.Rows, append(cells, num(d.AttnBias[b]), num(d.MLP[b])))
		}
		rest := Table{Title: "the other parts and the logit they sum to: " + r.Label, Header: []string{"part", "mean share"},
			Rows: [][]string{{"embed", num(d.Embed)}, {"pos_embed", num(d.PosEmbed)}, {"head bias term", num(d.Bias)}, {"target logit", num(d.Logit)}}}
		s.Tables = append(s.Tables, t, rest)
	}
	return s
}

// dlaGrid is the heads × blocks heat-map, block 0 at the top.
func dlaGrid(r *Run) *Figure {
	d := r.DLA
	depth, heads := len(d.Heads), len(d.Heads[0])
	p := plot.New()
	p.Title.Text = "heads × blocks: " + r.Label
	p.X.Label.Text, p.Y.Label.Text = "head", "block"
	p.Add(plotter.NewImage(patching.GridImage(d.Heads, 8), 0, 0, float64(heads), float64(depth)))
	var xt, yt []plot.Tick
	for h := range heads {
		xt = append(xt, plot.Tick{Value: float64(h) + 0.5, Label: strconv.Itoa(h)})
	}
	for b := range depth {
		yt = append(yt, plot.Tick{Value: float64(depth-b) - 0.5, Label: strconv.Itoa(b)})
	}
	p.X.Tick.Marker, p.Y.Tick.Marker = plot.ConstantTicks(xt), plot.ConstantTicks(yt)
	side := vg.Length(min(1.2, 14.0/float64(max(heads, depth)))) * vg.Centimeter
	return single("dla_heads-"+r.Label, "direct logit attribution: "+r.Label,
		fmt.Sprintf("Each head's mean share of the target logit over %d images (token %d; -1: the mean-pooled readout): red adds to the logit, blue takes from it, white is zero, on a scale symmetric around zero.", len(d.Images), d.Token),
		p, vg.Length(heads)*side+3*vg.Centimeter, vg.Length(depth)*side+2.5*vg.Centimeter)
}
