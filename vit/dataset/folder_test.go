package dataset

import (
	"image"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func makeFolder(t *testing.T) string {
	root := t.TempDir()
	writeJPEG(t, filepath.Join(root, "b", "x.jpg"), 4, 4)
	writePNG(t, filepath.Join(root, "a", "2.png"), image.NewGray(image.Rect(0, 0, 5, 3)))
	writeJPEG(t, filepath.Join(root, "a", "1.JPG"), 4, 4)
	writeFile(t, filepath.Join(root, "a", "notes.txt"), []byte("x"))
	if err := os.MkdirAll(filepath.Join(root, "a", "nested"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "c"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(root, "README"), []byte("x"))
	return root
}

func TestFolder(t *testing.T) {
	root := makeFolder(t)
	ds, err := Open("folder", root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ids(ds), []string{"a/1.JPG", "a/2.png", "b/x.jpg"}; !slices.Equal(got, want) {
		t.Errorf("ids %q, want %q", got, want)
	}
	if got := labels(ds); !slices.Equal(got, []int{0, 0, 1}) {
		t.Errorf("labels %v", got)
	}
	if got := ds.Classes(); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Errorf("classes %q", got)
	}
	img, err := ds.Image(1)
	if err != nil || img.Bounds() != image.Rect(0, 0, 5, 3) {
		t.Errorf("Image(1) = %v, %v", img, err)
	}
	sk := strings.Join(Skipped(ds), "\n")
	for _, s := range []string{"notes.txt: not an image", "nested: not an image", "c: empty class folder", "README: not a class folder"} {
		if !strings.Contains(sk, s) {
			t.Errorf("skipped %q lacks %q", sk, s)
		}
	}
	if len(Skipped(ds)) != 4 {
		t.Errorf("%d skips, want 4: %q", len(Skipped(ds)), Skipped(ds))
	}

	one, err := Open("folder", root, Options{PerClass: 1})
	if err != nil || !slices.Equal(ids(one), []string{"a/1.JPG", "b/x.jpg"}) {
		t.Errorf("PerClass 1: %q, %v", ids(one), err)
	}

	writeFile(t, filepath.Join(root, "b", "broken.png"), []byte("not a png"))
	ds, err = Open("folder", root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = ds.Image(2)
	wantErr(t, err, filepath.Join(root, "b", "broken.png"))
}

func TestFolderClassList(t *testing.T) {
	root := makeFolder(t)
	writeFile(t, filepath.Join(root, "classes.txt"), []byte("z zebra, the animal\nb bee\nc\na\n"))
	ds, err := Open("folder", root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := ds.Classes(); !slices.Equal(got, []string{"zebra, the animal", "bee", "c", "a"}) {
		t.Errorf("classes %q", got)
	}
	if got, want := ids(ds), []string{"b/x.jpg", "a/1.JPG", "a/2.png"}; !slices.Equal(got, want) {
		t.Errorf("ids %q, want %q", got, want)
	}
	if got := labels(ds); !slices.Equal(got, []int{1, 3, 3}) {
		t.Errorf("labels %v", got)
	}

	writeFile(t, filepath.Join(root, "classes.txt"), []byte("a\nc\n"))
	_, err = Open("folder", root, Options{})
	wantErr(t, err, filepath.Join(root, "b"), "classes.txt")

	writeFile(t, filepath.Join(root, "classes.txt"), []byte("a\nb\na\nc\n"))
	_, err = Open("folder", root, Options{})
	wantErr(t, err, "classes.txt:3")
}

func TestFolderBadInput(t *testing.T) {
	_, err := Open("folder", filepath.Join(t.TempDir(), "nope"), Options{})
	wantErr(t, err, "nope")

	root := t.TempDir()
	_, err = Open("folder", root, Options{})
	wantErr(t, err, "no class folders")

	if err := os.MkdirAll(filepath.Join(root, "empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, err = Open("folder", root, Options{})
	wantErr(t, err, "no images")

	_, err = Open("folder", "", Options{})
	wantErr(t, err, "no root")
	_, err = Open("mnist", root, Options{})
	wantErr(t, err, "unknown dataset kind")
}

func TestFolderSymlinkAndNoMasks(t *testing.T) {
	root := t.TempDir()
	elsewhere := t.TempDir()
	writeJPEG(t, filepath.Join(elsewhere, "p.jpg"), 4, 4)
	if err := os.Symlink(elsewhere, filepath.Join(root, "linked")); err != nil {
		t.Skip("no symlinks here:", err)
	}
	ds, err := Open("folder", root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := ids(ds); !slices.Equal(got, []string{"linked/p.jpg"}) {
		t.Errorf("ids %q", got)
	}
	if _, ok, err := ds.PatchLabels(0, 7); ok || err != nil {
		t.Errorf("PatchLabels: ok %v err %v, want no masks", ok, err)
	}
}
