// Package figures draws the paper's figures (notebooks 1-4, spec §5) from
// vitlens results folders with gonum/plot, as PNG and SVG, and puts them
// together with the summary tables into one self-contained HTML report.
//
// A figure is drawn from whatever the folders given hold: an extract run
// gives the identifiability figures, a memories run the key-value memory
// figures, a removal run the perturbation curves, a probe run the probe
// comparison, an explain run the explainability examples. Anything a figure
// needs and no folder has is skipped with a note saying which command makes
// it.
//
// Deviations from the original plots:
//   - A32: the negative and the positive perturbation curves are separate
//     figures (the original saved both to neg_perturb_{model}.png).
//   - A15: curves are drawn at every count 0..P of removed tokens against
//     the true fraction removed, and the "unperturbed accuracy" is the
//     accuracy with nothing removed.
//   - A26: runs of different depths are compared on a relative-depth axis
//     (block/depth) instead of averaging ViT-L's blocks in pairs.
//   - Box plots of identifiability are exact: ranks take only C values, so
//     quartiles come from rank histograms, not samples.
package figures

import (
	"bytes"
	"fmt"
	"image/color"
	"os"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"
)

// Figure is one figure: a grid of panels drawn on one canvas.
type Figure struct {
	Name    string // file name without extension
	Title   string
	Caption string
	Rows    int
	Cols    int
	Panels  []*plot.Plot // Rows×Cols, row-major; nil leaves a tile empty
	Width   vg.Length
	Height  vg.Length
}

// single wraps one plot.
func single(name, title, caption string, p *plot.Plot, w, h vg.Length) *Figure {
	return &Figure{Name: name, Title: title, Caption: caption, Rows: 1, Cols: 1, Panels: []*plot.Plot{p}, Width: w, Height: h}
}

func (f *Figure) draw(c vg.CanvasSizer) {
	dc := draw.New(c)
	if f.Rows*f.Cols == 1 {
		f.Panels[0].Draw(dc)
		return
	}
	tiles := draw.Tiles{Rows: f.Rows, Cols: f.Cols, PadX: vg.Millimeter * 2, PadY: vg.Millimeter * 2,
		PadTop: vg.Millimeter, PadBottom: vg.Millimeter, PadLeft: vg.Millimeter, PadRight: vg.Millimeter}
	grid := make([][]*plot.Plot, f.Rows)
	for r := range grid {
		grid[r] = make([]*plot.Plot, f.Cols)
		for c := range grid[r] {
			if i := r*f.Cols + c; i < len(f.Panels) {
				grid[r][c] = f.Panels[i]
			}
		}
	}
	canvases := plot.Align(grid, tiles, dc)
	for r := range grid {
		for c, p := range grid[r] {
			if p != nil {
				p.Draw(canvases[r][c])
			}
		}
	}
}

// SVG renders the figure as SVG.
func (f *Figure) SVG() ([]byte, error) {
	c := vgsvg.New(f.Width, f.Height)
	f.draw(c)
	var buf bytes.Buffer
	if _, err := c.WriteTo(&buf); err != nil {
		return nil, fmt.Errorf("figure %s: %w", f.Name, err)
	}
	return buf.Bytes(), nil
}

// PNG renders the figure as PNG at 144 dpi on white.
func (f *Figure) PNG() ([]byte, error) {
	c := vgimg.NewWith(vgimg.UseWH(f.Width, f.Height), vgimg.UseDPI(144), vgimg.UseBackgroundColor(color.White))
	f.draw(c)
	var buf bytes.Buffer
	if _, err := (vgimg.PngCanvas{Canvas: c}).WriteTo(&buf); err != nil {
		return nil, fmt.Errorf("figure %s: %w", f.Name, err)
	}
	return buf.Bytes(), nil
}

// Save writes dir/<name>.png and dir/<name>.svg.
func (f *Figure) Save(dir string) error {
	for _, ext := range []string{"png", "svg"} {
		render := f.PNG
		if ext == "svg" {
			render = f.SVG
		}
		data, err := render()
		if err != nil {
			return err
		}
		path := filepath.Join(dir, f.Name+"."+ext)
		if err := os.WriteFile(path+".tmp", data, 0o644); err != nil {
			return err
		}
		if err := os.Rename(path+".tmp", path); err != nil {
			return err
		}
	}
	return nil
}
