package dataset

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"vitlens/vit/preprocess"
)

// Patch labels of synthetic ImageNet-S masks against
// tools/reference/make_mask_golden.py (PIL NEAREST, the presets' crops,
// cv2.resize INTER_NEAREST): the original's full-mask sampling, and the
// masks cropped and resized exactly as the deit and miil presets do the
// image. Exact: labels are 0/1.
func TestMaskLabelsMatchReference(t *testing.T) {
	dir := filepath.Join("..", "..", "testdata", "dataset")
	b, err := os.ReadFile(filepath.Join(dir, "mask_labels.json"))
	if err != nil {
		t.Fatal(err)
	}
	var golden struct {
		Target int                           `json:"target"`
		Masks  map[string]map[string][]uint8 `json:"masks"`
	}
	if err := json.Unmarshal(b, &golden); err != nil {
		t.Fatal(err)
	}
	checked, differ := 0, 0
	for file, cases := range golden.Masks {
		mask, err := decodePath(filepath.Join(dir, file))
		if err != nil {
			t.Fatal(err)
		}
		w, h := mask.Bounds().Dx(), mask.Bounds().Dy()
		for key, want := range cases {
			parts := strings.Split(key, "/")
			grid, _ := strconv.Atoi(parts[len(parts)-1])
			var got []uint8
			if parts[0] == "full" {
				got = MaskPatchLabels(mask, golden.Target, grid)
			} else {
				p, err := preprocess.PresetByName(parts[0])
				if err != nil {
					t.Fatal(err)
				}
				s, _ := strconv.Atoi(parts[1])
				win := p.Window(w, h, s)
				if !win.Crops() {
					t.Fatalf("%s: %s does not crop a %dx%d image", key, p.Name, w, h)
				}
				got = MaskPatchLabelsIn(mask, golden.Target, grid, win)
				full := MaskPatchLabels(mask, golden.Target, grid)
				if fmt.Sprint(full) != fmt.Sprint(got) {
					differ++
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("%s %s: labels\n%v\nwant\n%v", file, key, got, want)
			}
			checked++
		}
	}
	// The fixtures must show the misalignment the crop fixes, or the test
	// could not tell the two samplings apart.
	if checked < 20 || differ < 10 {
		t.Fatalf("%d cases checked, %d where cropping changes the labels", checked, differ)
	}
	t.Logf("%d cases, %d where the crop changes the labels", checked, differ)
}

// The non-cropping presets keep the original's sampling exactly.
func TestWindowOfNonCroppingPresets(t *testing.T) {
	for _, name := range []string{"google", "cifar", "fmnist"} {
		p, _ := preprocess.PresetByName(name)
		if win := p.Window(301, 217, 224); win.Crops() || win.Left != 0 || win.Top != 0 {
			t.Errorf("%s: window %+v", name, win)
		}
	}
}
