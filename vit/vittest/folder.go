package vittest

import (
	"fmt"
	"image"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// ImageFolder writes a tiny class-per-folder dataset (dataset kind
// "folder") into a temporary directory: three classes class0..class2 with
// perClass w×h PNGs each. Red is noise; green and blue rise with the class,
// so a probe can learn the classes while a random model cannot.
func ImageFolder(t testing.TB, perClass, w, h int, seed uint64) string {
	t.Helper()
	root := t.TempDir()
	rng := rand.New(rand.NewPCG(seed, 1))
	for c := 0; c < 3; c++ {
		dir := filepath.Join(root, fmt.Sprintf("class%d", c))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < perClass; i++ {
			img := image.NewRGBA(image.Rect(0, 0, w, h))
			for p := 0; p < len(img.Pix); p += 4 {
				img.Pix[p], img.Pix[p+1], img.Pix[p+2], img.Pix[p+3] = uint8(rng.IntN(256)), uint8(rng.IntN(120)+60*c), uint8(80*c), 255
			}
			f, err := os.Create(filepath.Join(dir, fmt.Sprintf("img%02d.png", i)))
			if err != nil {
				t.Fatal(err)
			}
			err = png.Encode(f, img)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	return root
}
