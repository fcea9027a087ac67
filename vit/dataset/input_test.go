package dataset

import (
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

// A 1 KB Fashion-MNIST file declaring one 32767×32767 image is refused by
// the pixel limit from its header, before anything is allocated for it
// (it took 3.8 GB before).
func TestFMNISTPixelLimit(t *testing.T) {
	for _, gz := range []bool{true, false} {
		root := t.TempDir()
		writeFile(t, filepath.Join(root, "t10k-images-idx3-ubyte"), idx(t, []int{1, 32767, 32767}, make([]byte, 1000), gz))
		writeFile(t, filepath.Join(root, "t10k-labels-idx1-ubyte"), idx(t, []int{1}, []byte{0}, gz))
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := Open("fmnist", root, Options{})
		runtime.ReadMemStats(&after)
		wantErr(t, err, "t10k-images-idx3-ubyte", "[32767 32767] pixels exceed the limit")
		if a := after.TotalAlloc - before.TotalAlloc; a > 10<<20 {
			t.Errorf("gz %v: allocated %d bytes to refuse it", gz, a)
		}
	}
	// Within the limit but more than the file holds: refused before the
	// buffer is made.
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "t10k-images-idx3-ubyte"), idx(t, []int{1000, 1000, 1000}, make([]byte, 1000), false))
	writeFile(t, filepath.Join(root, "t10k-labels-idx1-ubyte"), idx(t, []int{1000}, make([]byte, 1000), false))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := Open("fmnist", root, Options{})
	runtime.ReadMemStats(&after)
	wantErr(t, err, "truncated", "record 0 is incomplete")
	if a := after.TotalAlloc - before.TotalAlloc; a > 10<<20 {
		t.Errorf("allocated %d bytes to refuse a short file", a)
	}
}
