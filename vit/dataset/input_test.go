package dataset

import (
	"bytes"
	"compress/gzip"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"vitlens/vit/preprocess"
)

// Input gives exactly Image + Apply, for file datasets (decoded straight
// to the tensor), through a Select view, and for in-memory ones.
func TestInputMatchesImageThenApply(t *testing.T) {
	p, err := preprocess.PresetByName("google")
	if err != nil {
		t.Fatal(err)
	}
	fm := t.TempDir()
	writeFMNIST(t, fm, []uint8{1, 2}, false)
	folder, err := Open("folder", makeFolder(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	fmnist, err := Open("fmnist", fm, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, ds := range []Dataset{folder, Select(folder, Selection{Classes: []int{1}}), fmnist} {
		for i := range ds.Len() {
			img, err := ds.Image(i)
			if err != nil {
				t.Fatal(err)
			}
			want, err := p.Apply(img, 16)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Input(ds, i, p, 16)
			if err != nil || !slices.Equal(got.Data, want.Data) {
				t.Errorf("%s item %d: Input differs from Image + Apply (%v)", ds.Name(), i, err)
			}
		}
	}
	if _, err := Input(folder, 99, p, 16); err == nil {
		t.Error("item out of range accepted")
	}
	// A file that cannot be decoded is named by its path.
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "a", "bad.png"), []byte("not a png"))
	bad, err := Open("folder", root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Input(bad, 0, p, 16); err == nil || !strings.Contains(err.Error(), filepath.Join(root, "a", "bad.png")) {
		t.Errorf("undecodable file: %v", err)
	}
}

// A Fashion-MNIST file declaring one image over the pixel limit is refused
// from its header, before anything is allocated for it (a 1.1 MB file
// holding one 32767×32767 image took 3.8 GB before); so is a header
// promising more than the file holds.
func TestFMNISTPixelLimit(t *testing.T) {
	for _, tc := range []struct {
		name string
		dims []int
		gz   bool
		want string
	}{
		{"16384² gzipped", []int{1, 16384, 16384}, true, "[16384 16384] pixels exceed the limit"},
		{"32767² raw", []int{1, 32767, 32767}, false, "[32767 32767] pixels exceed the limit"},
		{"1000 megapixel images in 1 KB", []int{1000, 1000, 1000}, false, "record 0 is incomplete"},
	} {
		root := t.TempDir()
		writeFile(t, filepath.Join(root, "t10k-images-idx3-ubyte"), idx(t, tc.dims, make([]byte, 1000), tc.gz))
		if tc.gz { // the image really is there: 256 MiB of zeros in 256 KB
			writeFile(t, filepath.Join(root, "t10k-images-idx3-ubyte"), zerosIDX(t, tc.dims))
		}
		writeFile(t, filepath.Join(root, "t10k-labels-idx1-ubyte"), idx(t, tc.dims[:1], make([]byte, tc.dims[0]), tc.gz))
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := Open("fmnist", root, Options{})
		runtime.ReadMemStats(&after)
		wantErr(t, err, "t10k-images-idx3-ubyte", tc.want)
		if a := after.TotalAlloc - before.TotalAlloc; a > 10<<20 {
			t.Errorf("%s: allocated %d bytes to refuse it", tc.name, a)
		}
	}
}

// zerosIDX is a gzipped IDX file of the given dimensions whose data are all
// present (zeros), written in pieces so the test never holds it whole.
func zerosIDX(t *testing.T, dims []int) []byte {
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	head := idx(t, dims, nil, false)
	zw.Write(head)
	n := 1
	for _, d := range dims {
		n *= d
	}
	zeros := make([]byte, 1<<20)
	for ; n > 0; n -= len(zeros) {
		zw.Write(zeros[:min(n, len(zeros))])
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
