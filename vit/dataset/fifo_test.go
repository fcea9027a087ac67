//go:build unix

package dataset

import (
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// within fails the test instead of hanging when fn blocks (opening a FIFO
// waits for a writer that never comes).
func within(t *testing.T, what string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); fn() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s still blocked after 10 s (a FIFO opened?)", what)
	}
}

func mkfifo(t *testing.T, path string) {
	t.Helper()
	if err := syscall.Mkfifo(path, 0o644); err != nil {
		t.Skipf("cannot make a FIFO here: %v", err)
	}
}

// A FIFO named like an image is skipped with its reason, never opened; a
// FIFO in place of a dataset file is an error naming it.
func TestNonRegularFilesNotOpened(t *testing.T) {
	root := t.TempDir()
	writeJPEG(t, filepath.Join(root, "a", "1.jpg"), 4, 4)
	mkfifo(t, filepath.Join(root, "a", "2.png"))
	var ds Dataset
	var err error
	within(t, "Open(folder)", func() { ds, err = Open("folder", root, Options{}) })
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(ds); !slices.Equal(got, []string{"a/1.jpg"}) {
		t.Errorf("ids %q: the FIFO must be left out", got)
	}
	if sk := strings.Join(Skipped(ds), "\n"); !strings.Contains(sk, filepath.Join(root, "a", "2.png")+": not a regular file") {
		t.Errorf("skipped %q: want the FIFO with its reason", sk)
	}

	// ImageNet-S without a CSV lists its JPEGs the same way.
	inet := t.TempDir()
	writeFile(t, filepath.Join(inet, "ImageNetS919", "LOC_synset_mapping.txt"), []byte("n01 one\n"))
	writeJPEG(t, filepath.Join(inet, "ImageNetS919", "validation", "n01", "a.JPEG"), 4, 4)
	mkfifo(t, filepath.Join(inet, "ImageNetS919", "validation", "n01", "b.JPEG"))
	within(t, "Open(imagenet-s)", func() { ds, err = Open("imagenet-s", inet, Options{PerClass: -1}) })
	if err == nil {
		if got := ids(ds); !slices.Equal(got, []string{"n01/a.JPEG"}) {
			t.Errorf("imagenet-s ids %q", got)
		}
		if sk := strings.Join(Skipped(ds), "\n"); !strings.Contains(sk, "b.JPEG: not a regular file") {
			t.Errorf("imagenet-s skipped %q", sk)
		}
	} else {
		t.Errorf("imagenet-s: %v", err)
	}

	// A FIFO where a data file belongs.
	cifar := t.TempDir()
	mkfifo(t, filepath.Join(cifar, "test.bin"))
	within(t, "Open(cifar100)", func() { _, err = Open("cifar100", cifar, Options{}) })
	wantErr(t, err, filepath.Join(cifar, "test.bin"), "not a regular file")
	fm := t.TempDir()
	mkfifo(t, filepath.Join(fm, "t10k-images-idx3-ubyte"))
	writeFile(t, filepath.Join(fm, "t10k-labels-idx1-ubyte"), idx(t, []int{1}, []byte{0}, false))
	within(t, "Open(fmnist)", func() { _, err = Open("fmnist", fm, Options{}) })
	wantErr(t, err, "t10k-images-idx3-ubyte", "not a regular file")
}
