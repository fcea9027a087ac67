package batch

import (
	"bytes"
	"fmt"
	"image"
	"image/png"
	"io"
	"strconv"

	"vitlens/vit"
	"vitlens/vit/bundle"
	"vitlens/vit/dataset"
	"vitlens/vit/experiment"
	"vitlens/vit/explain"
	"vitlens/vit/results"
)

// MapRow is one value of one map of one image: table "maps". Block and Head
// are -1 where the map sums over them: (−1, −1) is the whole map, (b, −1)
// block b's share, (b, h) the head-specific map. Token is the original
// sequence index of the image token.
type MapRow struct {
	Image  int32   `parquet:"image"`
	Method string  `parquet:"method,dict"` // "ours" or "chefer"
	Block  int32   `parquet:"block"`
	Head   int32   `parquet:"head"`
	Token  int32   `parquet:"token"`
	Value  float32 `parquet:"value"`
}

// ImageRow is one explained image: table "images".
type ImageRow struct {
	Image   int32   `parquet:"image"`
	ID      string  `parquet:"id"`
	Label   int32   `parquet:"label"` // -1 when unknown (image files)
	Target  int32   `parquet:"target"`
	Pred    int32   `parquet:"pred"`
	Correct bool    `parquet:"correct"`
	Loss    float32 `parquet:"loss"`    // Σ_b ℓ_b of the map's objective ([CLS] token; −o[c] for cat_prob)
	Overlay string  `parquet:"overlay"` // file name prefix under overlays/
}

// OverlayDir is the folder of a results folder that holds the PNGs.
const OverlayDir = "overlays"

// Explainer explains every image of a dataset into a results folder:
// tables "maps" and "images", and PNG overlays.
type Explainer struct {
	Bundle  *bundle.Bundle
	Data    dataset.Dataset
	Out     *results.Run
	Options explain.Options
	// Target is the class explained: −1 explains the label when the dataset
	// knows it (the original's choice) and the prediction otherwise; −2
	// always the prediction; ≥ 0 that class.
	Target   int
	Size     int  // overlay side in pixels
	PerBlock bool // also draw each block's share of the paper's map
	PerHead  bool // also draw every block's head-specific maps (the paper's head figures)
	Progress func(done, total int)
	Log      io.Writer
}

// Explain-target policies of Explainer.Target.
const (
	TargetLabel      = -1
	TargetPrediction = -2
)

// Run explains every image, chunk by chunk (resumable).
// ExplainTables are the tables an explain run writes, for the manifest.
func ExplainTables() []results.Table {
	return []results.Table{results.TableOf[MapRow]("maps"), results.TableOf[ImageRow]("images"), results.TableOf[experiment.SkipRow]("skipped")}
}

func (r *Explainer) Run() (images int, err error) {
	st, err := experiment.RunChunks(r.Out, r.Data.Len(), 0, 1, r.Progress, func(k, lo, hi int) (int, int, error) {
		n, err := r.runChunk(k, lo, hi)
		return n, hi - lo - n, err
	})
	return st.Images, err
}

func (r *Explainer) runChunk(k, lo, hi int) (int, error) {
	m := r.Bundle.Model
	maps := make([][]MapRow, hi-lo)
	imgs := make([]ImageRow, hi-lo)
	errs := make([]error, hi-lo)
	vit.Parallel(lo, hi, func(i int) {
		maps[i-lo], imgs[i-lo], errs[i-lo] = r.one(m, i)
	})
	var rows []MapRow
	var imgRows []ImageRow
	var skips []experiment.SkipRow
	for i, e := range errs {
		if e != nil {
			item := r.Data.Item(lo + i)
			skips = append(skips, experiment.SkipRow{Image: int32(item.Index), ID: item.ID, Reason: e.Error()})
			if r.Log != nil {
				fmt.Fprintf(r.Log, "skipped image %d: %v\n", item.Index, e)
			}
			continue
		}
		rows = append(rows, maps[i]...)
		imgRows = append(imgRows, imgs[i])
	}
	for _, w := range []error{
		results.WriteChunk(r.Out, "maps", k, rows),
		results.WriteChunk(r.Out, "images", k, imgRows),
		results.WriteChunk(r.Out, "skipped", k, experiment.WithIndexSkips(r.Data, k, skips)),
	} {
		if w != nil {
			return 0, w
		}
	}
	return len(imgRows), r.Out.CommitChunk(k)
}

func (r *Explainer) one(m *vit.Model, i int) ([]MapRow, ImageRow, error) {
	c := m.Config
	item := r.Data.Item(i)
	px, err := dataset.Input(r.Data, i, r.Bundle.Preset, c.ImageSize)
	if err != nil {
		return nil, ImageRow{}, err
	}
	target := r.Target
	switch {
	case target == TargetLabel && item.Label >= 0 && item.Label < c.Classes:
		target = item.Label
	case target < 0:
		target = -1 // Map: the prediction
	}
	mp, err := explain.Map(m, px, target, r.Options)
	if err != nil {
		return nil, ImageRow{}, fmt.Errorf("%s: %w", item.ID, err)
	}
	idx := int32(item.Index)
	first := c.FirstImageToken()
	var rows []MapRow
	add := func(method string, b, h int, v []float32) {
		for p, x := range v {
			rows = append(rows, MapRow{Image: idx, Method: method, Block: int32(b), Head: int32(h), Token: int32(first + p), Value: x})
		}
	}
	add("ours", -1, -1, mp.Ours)
	for b := range mp.PerBlock {
		add("ours", b, -1, mp.PerBlock[b])
		for h := range mp.PerHead[b] {
			add("ours", b, h, mp.PerHead[b][h])
		}
	}
	if mp.Chefer != nil {
		add("chefer", -1, -1, mp.Chefer)
	}
	var loss float32
	for _, l := range mp.Loss {
		loss += l
	}
	prefix := strconv.Itoa(item.Index)
	files := map[string]image.Image{"image": explain.Picture(px, r.Size), "ours": explain.Overlay(px, mp.Ours, mp.Grid, r.Size)}
	if mp.Chefer != nil {
		files["chefer"] = explain.Overlay(px, mp.Chefer, mp.Grid, r.Size)
	}
	if r.PerBlock {
		for b, v := range mp.PerBlock {
			files[fmt.Sprintf("ours_block%d", b+1)] = explain.Overlay(px, v, mp.Grid, r.Size)
		}
	}
	if r.PerHead {
		for b, heads := range mp.PerHead {
			for h, v := range heads {
				files[fmt.Sprintf("ours_block%d_head%d", b+1, h+1)] = explain.Overlay(px, v, mp.Grid, r.Size)
			}
		}
	}
	for name, im := range files {
		if err := writePNG(r.Out, OverlayDir+"/"+prefix+"_"+name+".png", im); err != nil {
			return nil, ImageRow{}, err
		}
	}
	label := int32(item.Label)
	if item.Label < 0 {
		label = -1
	}
	return rows, ImageRow{Image: idx, ID: item.ID, Label: label, Target: int32(mp.Target), Pred: int32(mp.Pred),
		Correct: item.Label >= 0 && mp.Pred == item.Label, Loss: loss, Overlay: prefix}, nil
}

// writePNG writes an image through a temporary file, so a crash never
// leaves half a PNG under the final name.
func writePNG(out *results.Run, name string, im image.Image) error {
	var buf bytes.Buffer
	if err := png.Encode(&buf, im); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return out.WriteFile(name, buf.Bytes())
}
