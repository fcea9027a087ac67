package dataset

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"vitlens/vit/preprocess"
)

// makeImageNetS builds a tiny ImageNet-S tree. LOC order differs from wnid
// order so that labels cannot come from folder order; one category is in
// CATS_EXCLUDE and one has fewer than 5 JPEGs.
func makeImageNetS(t *testing.T) string {
	root := t.TempDir()
	base := filepath.Join(root, "ImageNetS919")
	writeFile(t, filepath.Join(base, "LOC_synset_mapping.txt"), []byte(
		"n01484850 great white shark, white shark\n"+
			"n01440764 tench, Tinca tinca\n"+
			"n04355933 sunglass\n"+
			"n09999999 underfilled\n"+
			"n01443537 goldfish, Carassius auratus\n"))
	val := filepath.Join(base, "validation")
	// Created out of name order: the first 5 by name are 050..400.
	for _, n := range []string{"300", "100", "200", "050", "500", "400"} {
		writeJPEG(t, filepath.Join(val, "n01440764", "ILSVRC2012_val_00000"+n+".JPEG"), 10, 6)
	}
	writeFile(t, filepath.Join(val, "n01440764", "notes.txt"), []byte("not an image"))
	for wnid, n := range map[string]int{"n01443537": 5, "n01484850": 5, "n04355933": 5, "n09999999": 3} {
		for k := range n {
			writeJPEG(t, filepath.Join(val, wnid, fmt.Sprintf("img_%d.JPEG", 4-k)), 10, 6)
		}
	}
	writeFile(t, filepath.Join(val, "stray.txt"), nil)

	// Mask ids above 255 exercise the G channel: 256 dummy lines first.
	var cats strings.Builder
	for k := range 256 {
		fmt.Fprintf(&cats, "n1%07d\n", k)
	}
	cats.WriteString("n01443537\nn01440764\nn01484850\n") // ids 257, 258, 259
	writeFile(t, filepath.Join(root, "data", "categories", "ImageNetS_categories_im919.txt"), []byte(cats.String()))

	seg := filepath.Join(base, "validation-segmentation", "n01440764")
	writePNG(t, filepath.Join(seg, "ILSVRC2012_val_00000050.png"), idMask(10, 6, map[image.Point]int{
		{3, 0}: 258, {6, 2}: 258, {0, 4}: 258, {4, 4}: 258, {5, 3}: 258,
		{0, 0}: 1000, // ignore: context
		{6, 0}: 2,    // R=2 alone is not id 258
		{3, 2}: 257,  // another category: context
	}))
	writePNG(t, filepath.Join(seg, "ILSVRC2012_val_00000100.png"), idMask(6, 10, nil)) // transposed size
	// 00000200 has no mask.
	writeFile(t, filepath.Join(val, "n01440764", "ILSVRC2012_val_00000300.JPEG"), []byte("garbage"))
	return root
}

func TestImageNetSBuiltOrder(t *testing.T) {
	root := makeImageNetS(t)
	ds, err := Open("imagenet-s", root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, n := range []string{"050", "100", "200", "300", "400"} {
		want = append(want, "n01440764/ILSVRC2012_val_00000"+n+".JPEG")
	}
	for _, w := range []string{"n01443537", "n01484850"} {
		for k := range 5 {
			want = append(want, fmt.Sprintf("%s/img_%d.JPEG", w, k))
		}
	}
	if got := ids(ds); !slices.Equal(got, want) {
		t.Fatalf("ids\n got %q\nwant %q", got, want)
	}
	wantLabels := slices.Concat(slices.Repeat([]int{1}, 5), slices.Repeat([]int{4}, 5), slices.Repeat([]int{0}, 5))
	if got := labels(ds); !slices.Equal(got, wantLabels) {
		t.Errorf("labels %v, want %v", got, wantLabels)
	}
	it := ds.Item(7)
	if it.Index != 7 || it.Concept != "n01443537" {
		t.Errorf("item 7 = %+v", it)
	}
	if c := ds.Classes(); len(c) != 5 || c[1] != "tench, Tinca tinca" {
		t.Errorf("classes %q", c)
	}
	sk := strings.Join(Skipped(ds), "\n")
	for _, s := range []string{"n04355933: excluded", "n09999999: 3 JPEGs, fewer than 5"} {
		if !strings.Contains(sk, s) {
			t.Errorf("skipped %q lacks %q", sk, s)
		}
	}
	if img, err := ds.Image(0); err != nil || img.Bounds().Dx() != 10 || img.Bounds().Dy() != 6 {
		t.Errorf("Image(0) = %v, %v", img, err)
	}

	all, err := Open("imagenet-s", root, Options{PerClass: -1})
	if err != nil {
		t.Fatal(err)
	}
	if all.Len() != 6+5+5+3 {
		t.Errorf("PerClass -1: %d items, want 19", all.Len())
	}
}

func TestImageNetSPatchLabels(t *testing.T) {
	root := makeImageNetS(t)
	ds, err := Open("imagenet-s", root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// 10×6 mask. grid 3 samples rows 0,2,4 and columns 0,3,6; grid 2 samples
	// rows 0,3 and columns 0,5.
	for grid, want := range map[int][]uint8{
		3: {0, 1, 0, 0, 0, 1, 1, 0, 0},
		2: {0, 0, 0, 1},
	} {
		got, ok, err := ds.PatchLabels(0, grid)
		if err != nil || !ok || !slices.Equal(got, want) {
			t.Errorf("grid %d: %v %v %v, want %v", grid, got, ok, err, want)
		}
	}

	_, _, err = ds.PatchLabels(1, 7)
	wantErr(t, err, "ILSVRC2012_val_00000100.png", "6x10", "10x6")
	if !errors.Is(err, ErrMaskSize) {
		t.Errorf("wrong-size mask error %v does not wrap ErrMaskSize", err)
	}
	_, _, err = ds.PatchLabels(2, 7)
	wantErr(t, err, filepath.Join("validation-segmentation", "n01440764", "ILSVRC2012_val_00000200.png"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing mask error %v does not wrap fs.ErrNotExist", err)
	}
	_, _, err = ds.PatchLabels(0, 0)
	wantErr(t, err, "grid")

	_, err = ds.Image(3)
	wantErr(t, err, filepath.Join("n01440764", "ILSVRC2012_val_00000300.JPEG"))
	_, err = ds.Image(99)
	wantErr(t, err, "out of range")

	os.Remove(filepath.Join(root, "data", "categories", "ImageNetS_categories_im919.txt"))
	ds2, err := Open("imagenet-s", root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = ds2.PatchLabels(0, 7)
	wantErr(t, err, "ImageNetS_categories_im919.txt")
}

// With the model's preset in Options, masks follow the image: miil (shorter
// side 6, centre crop) keeps columns 2..7 of the 10×6 mask, so grid 3
// samples columns 2, 4, 6; google only resizes and keeps the original's
// sampling.
func TestImageNetSPatchLabelsFollowTheCrop(t *testing.T) {
	root := makeImageNetS(t)
	for _, c := range []struct {
		preset string
		want   []uint8
	}{
		{"miil", []uint8{0, 0, 0, 0, 0, 1, 0, 1, 0}},
		{"google", []uint8{0, 1, 0, 0, 0, 1, 1, 0, 0}},
	} {
		p, err := preprocess.PresetByName(c.preset)
		if err != nil {
			t.Fatal(err)
		}
		ds, err := Open("imagenet-s", root, Options{Preset: &p, ImageSize: 6})
		if err != nil {
			t.Fatal(err)
		}
		got, ok, err := ds.PatchLabels(0, 3)
		if err != nil || !ok || !slices.Equal(got, c.want) {
			t.Errorf("%s: %v %v %v, want %v", c.preset, got, ok, err, c.want)
		}
	}
}

func TestImageNetSStimInfoCSV(t *testing.T) {
	root := makeImageNetS(t)
	csvPath := filepath.Join(root, "ImageNetS919", "validation_stim_info.csv")
	write := func(s string) { writeFile(t, csvPath, []byte(s)) }

	// pandas' default layout, with the unnamed index column and quoted names.
	write(",imagenet_id,index,cat,img_name,img_index\n" +
		`0,n01443537,4,"goldfish, Carassius auratus",img_3.JPEG,0` + "\n" +
		`1,n01440764,1,"tench, Tinca tinca",ILSVRC2012_val_00000500.JPEG,0` + "\n")
	ds, err := Open("imagenet-s", root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ids(ds), []string{"n01443537/img_3.JPEG", "n01440764/ILSVRC2012_val_00000500.JPEG"}; !slices.Equal(got, want) {
		t.Errorf("ids %q, want %q", got, want)
	}
	if got := labels(ds); !slices.Equal(got, []int{4, 1}) {
		t.Errorf("labels %v", got)
	}

	write("imagenet_id,index,cat,img_name,img_index\nn01443537,4,goldfish,a.JPEG,0\nn07777777,5,x,b.JPEG,0\n")
	_, err = Open("imagenet-s", root, Options{})
	wantErr(t, err, "validation_stim_info.csv:3", "n07777777")

	write("imagenet_id,index,cat,img_name,img_index\nn01443537,3,goldfish,a.JPEG,0\n")
	_, err = Open("imagenet-s", root, Options{})
	wantErr(t, err, "validation_stim_info.csv:2", "index")

	write("imagenet_id,cat,img_name\nn01443537,goldfish,a.JPEG\n")
	_, err = Open("imagenet-s", root, Options{})
	wantErr(t, err, "validation_stim_info.csv", `"index"`)

	// A built order written by StimInfoCSV reads back identically.
	os.Remove(csvPath)
	built, err := Open("imagenet-s", root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := built.(*ImageNetS).StimInfoCSV(&buf); err != nil {
		t.Fatal(err)
	}
	write(buf.String())
	back, err := Open("imagenet-s", root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids(back), ids(built)) || !slices.Equal(labels(back), labels(built)) {
		t.Errorf("CSV round trip changed the stimuli:\n%s", buf.String())
	}
}

func TestImageNetSMissingLOC(t *testing.T) {
	root := t.TempDir()
	writeJPEG(t, filepath.Join(root, "ImageNetS919", "validation", "n01440764", "a.JPEG"), 4, 4)
	_, err := Open("imagenet-s", root, Options{})
	wantErr(t, err, filepath.Join("ImageNetS919", "LOC_synset_mapping.txt"), "missing")
	_, err = Open("imagenet-s", filepath.Join(root, "ImageNetS919"), Options{})
	wantErr(t, err, "no ImageNetS919 folder")
}

func TestImageNetSUnknownFolder(t *testing.T) {
	root := makeImageNetS(t)
	writeJPEG(t, filepath.Join(root, "ImageNetS919", "validation", "n05555555", "a.JPEG"), 4, 4)
	_, err := Open("imagenet-s", root, Options{})
	wantErr(t, err, "n05555555", "LOC_synset_mapping.txt")
}

func TestNearestSourceMatchesOpenCV(t *testing.T) {
	// Values of cv2.resize(..., INTER_NEAREST) index arithmetic; the last
	// row is where the double-precision reciprocal differs from d*src/dst.
	for _, c := range []struct{ d, src, dst, want int }{
		{0, 224, 7, 0}, {1, 224, 7, 32}, {6, 224, 7, 192},
		{1, 500, 7, 71}, {6, 375, 7, 321},
		{2, 3, 7, 0}, {6, 3, 7, 2}, // upsampling repeats pixels
		{7, 58, 14, 28},
	} {
		if got := nearestSource(c.d, c.src, c.dst); got != c.want {
			t.Errorf("nearestSource(%d, %d, %d) = %d, want %d", c.d, c.src, c.dst, got, c.want)
		}
	}
	// The same case through a whole mask: only column 28 is the category,
	// and OpenCV's grid column 7 reads exactly that column.
	pts := map[image.Point]int{}
	for y := range 20 {
		pts[image.Point{28, y}] = 5
	}
	got := MaskPatchLabels(idMask(58, 20, pts), 5, 14)
	for k, v := range got {
		want := uint8(0)
		if k%14 == 7 {
			want = 1
		}
		if v != want {
			t.Fatalf("token %d (row %d, column %d) = %d, want %d", k, k/14, k%14, v, want)
		}
	}
}

func TestImageNetSBadLOC(t *testing.T) {
	root := makeImageNetS(t)
	loc := filepath.Join(root, "ImageNetS919", "LOC_synset_mapping.txt")
	writeFile(t, loc, []byte("n01440764 tench\nn01443537 goldfish\nn01440764 tench again\n"))
	_, err := Open("imagenet-s", root, Options{})
	wantErr(t, err, loc+":3", "n01440764")
	writeFile(t, loc, []byte("n01440764 tench\n\nn01443537 goldfish\n"))
	_, err = Open("imagenet-s", root, Options{})
	wantErr(t, err, loc+":2", "empty")
}

// Batch runs decode from several goroutines; run with -race.
func TestImageNetSConcurrent(t *testing.T) {
	ds, err := Open("imagenet-s", makeImageNetS(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error)
	for range 4 {
		go func() {
			_, _, err := ds.PatchLabels(0, 3)
			if err == nil {
				_, err = ds.Image(0)
			}
			done <- err
		}()
	}
	for range 4 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}
