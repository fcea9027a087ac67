package dataset

import (
	"fmt"
	"image/color"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// cifarBin encodes records with the given fine labels; record r's pixel p
// has R = r, G = p mod 256, B = 255 - r.
func cifarBin(fine []uint8) []byte {
	var out []byte
	for r, l := range fine {
		rec := make([]byte, cifarRecord)
		rec[0], rec[1] = l/5, l
		for p := range 1024 {
			rec[2+p] = byte(r)
			rec[2+1024+p] = byte(p)
			rec[2+2048+p] = byte(255 - r)
		}
		out = append(out, rec...)
	}
	return out
}

func TestCIFAR100Order(t *testing.T) {
	root := t.TempDir()
	fine := []uint8{3, 1, 3, 0, 3, 3, 3, 3, 1, 99}
	writeFile(t, filepath.Join(root, "cifar-100-binary", "test.bin"), cifarBin(fine))
	ds, err := Open("cifar100", root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// By label, then file order; label 3 keeps its first 5 of 6.
	wantRecords := []int{3, 1, 8, 0, 2, 4, 5, 6, 9}
	var want []string
	for _, r := range wantRecords {
		want = append(want, fmt.Sprintf("cifar100-test-%d", r))
	}
	if got := ids(ds); !slices.Equal(got, want) {
		t.Fatalf("ids %q, want %q", got, want)
	}
	if got := labels(ds); !slices.Equal(got, []int{0, 1, 1, 3, 3, 3, 3, 3, 99}) {
		t.Errorf("labels %v", got)
	}
	if it := ds.Item(8); it.Concept != "99" || it.Index != 8 {
		t.Errorf("item 8 = %+v", it)
	}
	if c := ds.Classes(); len(c) != 100 || c[42] != "42" {
		t.Errorf("classes without names file: %q", c)
	}
	img, err := ds.Image(2) // record 8
	if err != nil {
		t.Fatal(err)
	}
	if got, want := color.RGBAModel.Convert(img.At(5, 1)), (color.RGBA{8, 37, 247, 255}); got != want {
		t.Errorf("record 8 pixel (5,1) = %v, want %v", got, want)
	}
	if _, ok, err := ds.PatchLabels(0, 14); ok || err != nil {
		t.Errorf("PatchLabels: ok %v err %v, want no masks", ok, err)
	}

	all, err := Open("cifar100", filepath.Join(root, "cifar-100-binary", "test.bin"), Options{PerClass: -1})
	if err != nil || all.Len() != len(fine) {
		t.Errorf("PerClass -1 on the file itself: %v items, %v", all, err)
	}
}

func TestCIFAR100Names(t *testing.T) {
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "test.bin"), cifarBin([]uint8{7}))
	var names []string
	for k := range 100 {
		names = append(names, fmt.Sprintf("class%d", k))
	}
	writeFile(t, filepath.Join(root, "fine_label_names.txt"), []byte(strings.Join(names, "\n")+"\n"))
	ds, err := Open("cifar100", root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if ds.Classes()[7] != "class7" || ds.Item(0).Concept != "7" {
		t.Errorf("class 7 %q, concept %q", ds.Classes()[7], ds.Item(0).Concept)
	}
	writeFile(t, filepath.Join(root, "fine_label_names.txt"), []byte("apple\nbanana\n"))
	_, err = Open("cifar100", root, Options{})
	wantErr(t, err, "fine_label_names.txt", "2 class names")
}

func TestCIFAR100BadInput(t *testing.T) {
	root := t.TempDir()
	_, err := Open("cifar100", root, Options{})
	wantErr(t, err, filepath.Join("cifar-100-binary", "test.bin"))

	path := filepath.Join(root, "test.bin")
	writeFile(t, path, cifarBin([]uint8{1, 2, 3})[:2*cifarRecord+100])
	_, err = Open("cifar100", root, Options{})
	wantErr(t, err, path, "truncated", "record 2")

	bad := cifarBin([]uint8{1, 2})
	bad[cifarRecord+1] = 100
	writeFile(t, path, bad)
	_, err = Open("cifar100", root, Options{})
	wantErr(t, err, path, "record 1")

	writeFile(t, path, nil)
	_, err = Open("cifar100", root, Options{})
	wantErr(t, err, path, "no records")
}
