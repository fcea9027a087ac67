package dataset

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeFile creates path (and its folders) with the given content.
func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func writeJPEG(t *testing.T, path string, w, h int) {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, nil); err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, buf.Bytes())
}

func writePNG(t *testing.T, path string, img image.Image) {
	t.Helper()
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, buf.Bytes())
}

// idMask builds a w×h ImageNet-S mask (id = R + 256·G) that is 0 except at
// the given pixels.
func idMask(w, h int, ids map[image.Point]int) *image.RGBA {
	m := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			m.Set(x, y, color.RGBA{A: 255})
		}
	}
	for p, id := range ids {
		m.Set(p.X, p.Y, color.RGBA{R: uint8(id % 256), G: uint8(id / 256), A: 255})
	}
	return m
}

// idx encodes an unsigned-byte IDX file, gzipped when gz is true.
func idx(t testing.TB, dims []int, data []byte, gz bool) []byte {
	t.Helper()
	var buf bytes.Buffer
	buf.Write([]byte{0, 0, 0x08, byte(len(dims))})
	for _, d := range dims {
		binary.Write(&buf, binary.BigEndian, uint32(d))
	}
	buf.Write(data)
	if !gz {
		return buf.Bytes()
	}
	return gzipBytes(buf.Bytes())
}

func gzipBytes(b []byte) []byte {
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Write(b)
	zw.Close()
	return z.Bytes()
}

func ids(ds Dataset) []string {
	var out []string
	for i := range ds.Len() {
		out = append(out, ds.Item(i).ID)
	}
	return out
}

func labels(ds Dataset) []int {
	var out []int
	for i := range ds.Len() {
		out = append(out, ds.Item(i).Label)
	}
	return out
}

// wantErr fails unless err is non-nil and mentions every fragment.
func wantErr(t *testing.T, err error, fragments ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one mentioning %q", fragments)
	}
	for _, f := range fragments {
		if !strings.Contains(err.Error(), f) {
			t.Errorf("error %q does not mention %q", err, f)
		}
	}
}
