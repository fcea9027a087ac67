package dataset

import (
	"bytes"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"vitlens/vit/preprocess"
)

// The dataset loaders' fuzz targets: no file content may panic or hang
// them, and every error names the file it is about. `make fuzz-short` runs
// each for a few seconds; plain `go test` runs the seeds.

// writeTemp writes data under a fresh folder as name and returns its path.
func writeTemp(t *testing.T, name string, data []byte) string {
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func FuzzFMNISTIDX(f *testing.F) {
	pix := make([]byte, 2*3*4)
	for i := range pix {
		pix[i] = byte(i * 9)
	}
	f.Add(idx(f, []int{2, 3, 4}, pix, false))
	f.Add(idx(f, []int{2, 3, 4}, pix, true))
	f.Add(idx(f, []int{2, 3, 4}, pix[:10], false))   // truncated
	f.Add(idx(f, []int{1, 32767, 32767}, nil, true)) // over the pixel limit
	f.Add(idx(f, []int{3}, []byte{1, 2, 3}, false))  // a label file
	f.Add([]byte{0x1f, 0x8b, 8, 0})                  // broken gzip
	f.Fuzz(func(t *testing.T, data []byte) {
		path := writeTemp(t, "t10k-images-idx3-ubyte", data)
		dims, pixels, err := readIDX(path, 3)
		if err != nil {
			if !strings.Contains(err.Error(), path) {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		if dims[1]*dims[2] > preprocess.MaxPixels || len(pixels) != dims[0]*dims[1]*dims[2] {
			t.Fatalf("dims %v with %d bytes accepted", dims, len(pixels))
		}
		d := &fmnist{split: "t10k", rows: dims[1], cols: dims[2], pixels: pixels, records: []int{0}, labels: []uint8{0}}
		img, err := d.Image(0)
		if err != nil || img.Bounds().Dx() != dims[2] {
			t.Fatalf("image 0: %v", err)
		}
	})
}

func FuzzCIFAR100(f *testing.F) {
	rec := make([]byte, cifarRecord)
	rec[0], rec[1] = 3, 42
	names := strings.Repeat("name\n", cifarClasses)
	f.Add(rec, []byte(names))
	f.Add(append(append([]byte{}, rec...), rec...), []byte(""))
	f.Add(rec[:100], []byte(names))
	bad := append([]byte{}, rec...)
	bad[1] = 200
	f.Add(bad, []byte("a\n\nb\n"))
	f.Fuzz(func(t *testing.T, bin, labelNames []byte) {
		dir := t.TempDir()
		sub := filepath.Join(dir, "cifar-100-binary")
		os.Mkdir(sub, 0o755)
		os.WriteFile(filepath.Join(sub, "test.bin"), bin, 0o644)
		if len(labelNames) > 0 {
			os.WriteFile(filepath.Join(sub, "fine_label_names.txt"), labelNames, 0o644)
		}
		ds, err := Open("cifar100", dir, Options{PerClass: -1})
		if err != nil {
			if !strings.Contains(err.Error(), sub) {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		for i := range min(ds.Len(), 4) {
			if it := ds.Item(i); it.Label < 0 || it.Label >= len(ds.Classes()) {
				t.Fatalf("item %d label %d of %d classes", i, it.Label, len(ds.Classes()))
			}
			if img, err := ds.Image(i); err != nil || img.Bounds() != image.Rect(0, 0, cifarSide, cifarSide) {
				t.Fatalf("image %d: %v", i, err)
			}
		}
	})
}

// FuzzMask: an ImageNet-S segmentation mask of any content decodes to
// grid×grid labels of 0 and 1, or an error naming the mask.
func FuzzMask(f *testing.F) {
	var buf bytes.Buffer
	if err := png.Encode(&buf, idMask(6, 4, map[image.Point]int{{1, 1}: 7, {5, 3}: 300})); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes(), 7, 3)
	f.Add(buf.Bytes()[:40], 300, 14)
	f.Add([]byte("\x89PNG\r\n\x1a\n"), 1, 1)
	f.Fuzz(func(t *testing.T, data []byte, id, grid int) {
		grid = 1 + abs(grid)%32
		var labels []uint8
		err := preprocess.DecodeWith(bytes.NewReader(data), "mask.png", func(m image.Image) error {
			labels = MaskPatchLabels(m, id, grid)
			return nil
		})
		if err != nil {
			if !strings.HasPrefix(err.Error(), "mask.png: ") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		if len(labels) != grid*grid {
			t.Fatalf("%d labels for grid %d", len(labels), grid)
		}
		for _, l := range labels {
			if l > 1 {
				t.Fatalf("label %d", l)
			}
		}
	})
}

func abs(v int) int {
	if v < 0 {
		return -(v + 1) // -MinInt overflows
	}
	return v
}
