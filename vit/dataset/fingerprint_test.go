package dataset

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// The fingerprint follows the image list: the same files under another root
// give the same one; a file added, removed, renamed, moved to another class
// or rewritten at another size, another selection or other in-memory pixels
// give another.
func TestFingerprint(t *testing.T) {
	build := func(t *testing.T, root string) {
		writeJPEG(t, filepath.Join(root, "cat", "a.jpg"), 8, 8)
		writeJPEG(t, filepath.Join(root, "cat", "b.jpg"), 8, 8)
		writeJPEG(t, filepath.Join(root, "dog", "c.jpg"), 8, 8)
	}
	fp := func(t *testing.T, root string, sel Selection) string {
		t.Helper()
		ds, err := Open("folder", root, Options{})
		if err != nil {
			t.Fatal(err)
		}
		return Fingerprint(Select(ds, sel))
	}
	base := filepath.Join(t.TempDir(), "set")
	build(t, base)
	want := fp(t, base, Selection{})
	if again := fp(t, base, Selection{}); again != want || len(want) != 64 {
		t.Fatalf("not deterministic: %s, %s", want, again)
	}
	copyRoot := filepath.Join(t.TempDir(), "set")
	build(t, copyRoot)
	if got := fp(t, copyRoot, Selection{}); got != want {
		t.Errorf("the same files elsewhere: %s, want %s", got, want)
	}
	if got := fp(t, base, Selection{Limit: 2}); got == want {
		t.Error("--limit 2 kept the fingerprint")
	}
	for name, change := range map[string]func(root string){
		"a file added":   func(root string) { writeJPEG(t, filepath.Join(root, "dog", "d.jpg"), 8, 8) },
		"a file removed": func(root string) { os.Remove(filepath.Join(root, "cat", "b.jpg")) },
		"a file renamed": func(root string) {
			os.Rename(filepath.Join(root, "cat", "b.jpg"), filepath.Join(root, "cat", "bb.jpg"))
		},
		"a file moved to another class": func(root string) {
			os.Rename(filepath.Join(root, "cat", "b.jpg"), filepath.Join(root, "dog", "b.jpg"))
		},
		"a file resized": func(root string) { writeJPEG(t, filepath.Join(root, "dog", "c.jpg"), 40, 40) },
	} {
		root := filepath.Join(t.TempDir(), "set")
		build(t, root)
		change(root)
		if got := fp(t, root, Selection{}); got == want {
			t.Errorf("%s: same fingerprint", name)
		}
	}

	// Fashion-MNIST: one file, in memory; its pixels count.
	fm := func(t *testing.T, lbls []uint8, bump bool) string {
		root := t.TempDir()
		writeFMNIST(t, root, lbls, false)
		if bump {
			p := filepath.Join(root, "t10k-images-idx3-ubyte")
			b, _ := os.ReadFile(p)
			b[len(b)-1]++
			os.WriteFile(p, b, 0o644)
		}
		ds, err := Open("fmnist", root, Options{})
		if err != nil {
			t.Fatal(err)
		}
		return Fingerprint(ds)
	}
	lbls := []uint8{1, 2, 3}
	if fm(t, lbls, false) != fm(t, lbls, false) || fm(t, lbls, false) == fm(t, lbls, true) || fm(t, lbls, false) == fm(t, []uint8{1, 2, 4}, false) {
		t.Error("fmnist fingerprint does not follow pixels and labels")
	}
}

// BenchmarkFingerprint prints the cost of fingerprinting a folder of 2,000
// images per file and as a ratio to opening (indexing) the same folder, its
// peer: both read the folder, the fingerprint adds one stat per file.
func BenchmarkFingerprint(b *testing.B) {
	root := b.TempDir()
	for c := range 10 {
		for i := range 200 {
			p := filepath.Join(root, fmt.Sprintf("c%d", c), fmt.Sprintf("%03d.jpg", i))
			os.MkdirAll(filepath.Dir(p), 0o755)
			if err := os.WriteFile(p, []byte("not decoded"), 0o644); err != nil {
				b.Fatal(err)
			}
		}
	}
	ds, err := Open("folder", root, Options{})
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	const opens = 20
	for range opens {
		if _, err := Open("folder", root, Options{}); err != nil {
			b.Fatal(err)
		}
	}
	open := time.Since(start) / opens
	b.ResetTimer()
	for range b.N {
		Fingerprint(ds)
	}
	per := b.Elapsed() / time.Duration(b.N)
	b.ReportMetric(float64(per.Microseconds())/float64(ds.Len()), "µs/file")
	b.ReportMetric(float64(per)/float64(open), "x_open")
}
