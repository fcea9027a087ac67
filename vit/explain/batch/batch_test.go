package batch

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"vitlens/vit"
	"vitlens/vit/bundle"
	"vitlens/vit/dataset"
	"vitlens/vit/explain"
	"vitlens/vit/preprocess"
	"vitlens/vit/results"
	"vitlens/vit/vittest"
)

var smallConfig = vittest.SmallConfig

func smallModel(t *testing.T) *vit.Model { return vittest.SharpModel(t) }

func TestRemovalRunAndSummary(t *testing.T) {
	m := smallModel(t)
	p, _ := preprocess.PresetByName("google")
	b := &bundle.Bundle{Model: m, Preset: p, Classes: []string{"a", "b", "c", "d"}}
	ds, err := dataset.Open("folder", vittest.ImageFolder(t, 2, 20, 18, 1), dataset.Options{})
	if err != nil {
		t.Fatal(err)
	}
	P := smallConfig.NumPatches()
	probe := map[int][]float64{}
	for i := 0; i < ds.Len(); i++ {
		sums := make([]float64, P)
		for j := range sums {
			sums[j] = float64((j * 7) % P)
		}
		probe[ds.Item(i).Index] = sums
	}
	spec := explain.RemovalSpec{Orderings: explain.AllOrderings, Directions: []string{explain.Negative, explain.Positive}, RandomSeeds: 2, ProbeRankSums: probe}
	dir := t.TempDir()
	man := results.Manifest{Experiment: "removal", Params: spec.Params(), ModelSHA256: "test", Config: smallConfig,
		Dataset: ds.Name(), Total: ds.Len(), ChunkSize: 4}
	out, err := results.Create(dir, man, results.Parquet)
	if err != nil {
		t.Fatal(err)
	}
	st, err := (&Removal{Bundle: b, Data: ds, Out: out, Spec: spec}).Run()
	if err != nil {
		t.Fatal(err)
	}
	if st.Images != 6 || st.Skipped != 0 {
		t.Fatalf("stats %+v", st)
	}
	var rows []explain.RemovalRow
	if err := results.ReadRows(dir, "removal", func(r explain.RemovalRow) error { rows = append(rows, r); return nil }); err != nil {
		t.Fatal(err)
	}
	// (ours, chefer, probe, 2 random) × 2 directions × (P+1) counts per image.
	if want := 6 * 5 * 2 * (P + 1); len(rows) != want {
		t.Fatalf("%d rows, want %d", len(rows), want)
	}
	rep, err := SummarizeRemoval(dir)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Images != 6 || rep.Patches != P || len(rep.Curves) != 8 {
		t.Fatalf("report %+v", rep)
	}
	for _, c := range rep.Curves {
		// Nothing removed, every ordering sees the same sequence; everything
		// removed, the same [CLS]-only one.
		if c.Accuracy[0] != rep.Accuracy || c.Accuracy[P] != rep.Curves[0].Accuracy[P] {
			t.Fatalf("%s/%s: ends %g %g", c.Ordering, c.Direction, c.Accuracy[0], c.Accuracy[P])
		}
		if c.Ordering == explain.OrderRandom && c.Seeds != 2 {
			t.Fatalf("random curve pools %d seeds", c.Seeds)
		}
	}
	// A probe folder missing an image is an error, not a skip.
	delete(probe, ds.Item(0).Index)
	dir2 := t.TempDir()
	out2, err := results.Create(dir2, man, results.Parquet)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (&Removal{Bundle: b, Data: ds, Out: out2, Spec: spec}).Run(); err == nil {
		t.Fatal("missing probe ranks were not reported")
	}
}

func TestExplainer(t *testing.T) {
	m := smallModel(t)
	p, _ := preprocess.PresetByName("google")
	b := &bundle.Bundle{Model: m, Preset: p, Classes: []string{"a", "b", "c", "d"}}
	ds, err := dataset.Open("folder", vittest.ImageFolder(t, 1, 20, 18, 1), dataset.Options{})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	man := results.Manifest{Experiment: "explain", ModelSHA256: "test", Config: smallConfig, Dataset: ds.Name(), Total: ds.Len(), ChunkSize: 2}
	out, err := results.Create(dir, man, results.Parquet)
	if err != nil {
		t.Fatal(err)
	}
	n, err := (&Explainer{Bundle: b, Data: ds, Out: out, Target: TargetLabel, Size: 24, PerBlock: true, PerHead: true}).Run()
	if err != nil || n != 3 {
		t.Fatalf("explained %d images: %v", n, err)
	}
	var imgs []ImageRow
	if err := results.ReadRows(dir, "images", func(r ImageRow) error { imgs = append(imgs, r); return nil }); err != nil {
		t.Fatal(err)
	}
	var maps []MapRow
	if err := results.ReadRows(dir, "maps", func(r MapRow) error { maps = append(maps, r); return nil }); err != nil {
		t.Fatal(err)
	}
	c := smallConfig
	// ours (whole, per block, per head) + chefer, one value per patch.
	if want := 3 * c.NumPatches() * (2 + c.Depth*(1+c.Heads)); len(maps) != want {
		t.Fatalf("%d map rows, want %d", len(maps), want)
	}
	img, _ := ds.Image(1)
	px, _ := p.Apply(img, c.ImageSize)
	mp, _ := explain.Map(m, px, ds.Item(1).Label, explain.Options{})
	for _, r := range maps {
		if r.Image == 1 && r.Method == "ours" && r.Block == -1 && r.Value != mp.Ours[r.Token-1] {
			t.Fatalf("row %+v, map says %g", r, mp.Ours[r.Token-1])
		}
	}
	for _, im := range imgs {
		if int(im.Target) != ds.Item(int(im.Image)).Label {
			t.Fatalf("image %d explains %d, label %d", im.Image, im.Target, ds.Item(int(im.Image)).Label)
		}
		for _, f := range []string{"image", "ours", "chefer", "ours_block1", "ours_block3", "ours_block1_head1",
			fmt.Sprintf("ours_block%d_head%d", c.Depth, c.Heads)} {
			if _, err := os.Stat(filepath.Join(dir, OverlayDir, im.Overlay+"_"+f+".png")); err != nil {
				t.Fatal(err)
			}
		}
	}
}
