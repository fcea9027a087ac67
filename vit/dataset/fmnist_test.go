package dataset

import (
	"image"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// writeFMNIST writes n 3×2 images (pixel k of image r = 10r + k) and their
// labels as a t10k split.
func writeFMNIST(t *testing.T, root string, lbls []uint8, gz bool) {
	t.Helper()
	var pix []byte
	for r := range lbls {
		for k := range 6 {
			pix = append(pix, byte(10*r+k))
		}
	}
	ext := ""
	if gz {
		ext = ".gz"
	}
	writeFile(t, filepath.Join(root, "t10k-images-idx3-ubyte"+ext), idx(t, []int{len(lbls), 2, 3}, pix, gz))
	writeFile(t, filepath.Join(root, "t10k-labels-idx1-ubyte"+ext), idx(t, []int{len(lbls)}, lbls, gz))
}

func TestFMNIST(t *testing.T) {
	lbls := []uint8{9, 0, 0, 3, 9, 0, 3}
	for _, gz := range []bool{true, false} {
		root := t.TempDir()
		writeFMNIST(t, root, lbls, gz)
		ds, err := Open("fmnist", root, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if got := labels(ds); !slices.Equal(got, []int{9, 0, 0, 3, 9, 0, 3}) {
			t.Errorf("gz %v: labels %v", gz, got)
		}
		if it := ds.Item(4); it.ID != "fmnist-t10k-4" || it.Concept != "9" {
			t.Errorf("item 4 = %+v", it)
		}
		img, err := ds.Image(4)
		if err != nil {
			t.Fatal(err)
		}
		g, ok := img.(*image.Gray)
		if !ok || g.Bounds() != image.Rect(0, 0, 3, 2) || !slices.Equal(g.Pix, []byte{40, 41, 42, 43, 44, 45}) {
			t.Errorf("gz %v: image 4 = %#v", gz, img)
		}
		if _, ok, err := ds.PatchLabels(0, 7); ok || err != nil {
			t.Errorf("PatchLabels: ok %v err %v, want no masks", ok, err)
		}
		g.Pix[0] = 0 // callers may scribble on their copy
		if again, _ := ds.Image(4); again.(*image.Gray).Pix[0] != 40 {
			t.Error("Image shares its pixels with the dataset")
		}
	}

	root := t.TempDir()
	writeFMNIST(t, root, lbls, true)
	ds, err := Open("fmnist", root, Options{PerClass: 2})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"fmnist-t10k-1", "fmnist-t10k-2", "fmnist-t10k-3", "fmnist-t10k-6", "fmnist-t10k-0", "fmnist-t10k-4"}
	if got := ids(ds); !slices.Equal(got, want) {
		t.Errorf("PerClass 2: %q, want %q", got, want)
	}
	if c := ds.Classes(); len(c) != 10 || c[9] != "Ankle boot" {
		t.Errorf("classes %q", c)
	}
}

func TestFMNISTBadInput(t *testing.T) {
	root := t.TempDir()
	_, err := Open("fmnist", root, Options{})
	wantErr(t, err, "t10k-images-idx3-ubyte")
	_, err = Open("fmnist", root, Options{FMNISTSplit: "val"})
	wantErr(t, err, "val")

	// Truncated gzip stream: the header promises 4 images of 6 bytes.
	imgs := filepath.Join(root, "t10k-images-idx3-ubyte.gz")
	full := idx(t, []int{4, 2, 3}, make([]byte, 24), false)
	writeFile(t, filepath.Join(root, "t10k-labels-idx1-ubyte.gz"), idx(t, []int{4}, []byte{1, 2, 3, 4}, true))
	writeFile(t, imgs, gzipBytes(full[:len(full)-10]))
	_, err = Open("fmnist", root, Options{})
	wantErr(t, err, imgs, "truncated", "record 2")

	// Cut inside the gzip stream itself, not only inside the IDX data.
	gz := idx(t, []int{4, 2, 3}, make([]byte, 24), true)
	writeFile(t, imgs, gz[:len(gz)-12])
	_, err = Open("fmnist", root, Options{})
	wantErr(t, err, imgs)

	// Plain labels file shorter than its header says.
	os.Remove(filepath.Join(root, "t10k-labels-idx1-ubyte.gz"))
	writeFile(t, imgs, idx(t, []int{4, 2, 3}, make([]byte, 24), true))
	labelsPath := filepath.Join(root, "t10k-labels-idx1-ubyte")
	writeFile(t, labelsPath, idx(t, []int{4}, []byte{1, 2}, false))
	_, err = Open("fmnist", root, Options{})
	wantErr(t, err, labelsPath, "record 2")

	writeFile(t, labelsPath, idx(t, []int{3}, []byte{1, 2, 3}, false))
	_, err = Open("fmnist", root, Options{})
	wantErr(t, err, "3 labels", "4 images")

	writeFile(t, labelsPath, idx(t, []int{4}, []byte{1, 2, 10, 3}, false))
	_, err = Open("fmnist", root, Options{})
	wantErr(t, err, labelsPath, "record 2")

	writeFile(t, labelsPath, idx(t, []int{2, 2}, []byte{1, 2, 3, 4}, false))
	_, err = Open("fmnist", root, Options{})
	wantErr(t, err, labelsPath, "1 dimensions")

	writeFile(t, labelsPath, idx(t, []int{1 << 31}, nil, false))
	_, err = Open("fmnist", root, Options{})
	wantErr(t, err, labelsPath, "implausible")
}

// TestFMNISTDebian reads the files of Debian's dataset-fashion-mnist package.
func TestFMNISTDebian(t *testing.T) {
	if _, err := os.Stat(DefaultFMNISTRoot); err != nil {
		t.Skip("dataset-fashion-mnist not installed")
	}
	ds, err := Open("fmnist", "", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if ds.Len() != 10000 {
		t.Fatalf("%d items, want 10000", ds.Len())
	}
	hist := make([]int, 10)
	for i := range ds.Len() {
		hist[ds.Item(i).Label]++
	}
	if !slices.Equal(hist, slices.Repeat([]int{1000}, 10)) {
		t.Errorf("label histogram %v, want 1000 each", hist)
	}
	img, err := ds.Image(9999)
	if err != nil || img.Bounds() != image.Rect(0, 0, 28, 28) {
		t.Errorf("Image(9999) = %v, %v", img, err)
	}
}
