package checkpoint

import (
	"archive/zip"
	"bytes"
	"io"
	"os"
	"slices"
	"strings"
	"testing"

	"vitlens/vit"
)

// The .pth fixtures (tools/reference/make_pth_fixtures.py, real torch.save output) load to
// the weights of their float32 safetensors twin.
func TestPyTorchFixtures(t *testing.T) {
	opt := Options{Override: &vit.Config{Heads: 2}} // dim 16: heads not inferable
	want, _, err := Load("testdata/tv_tiny.safetensors", opt)
	if err != nil {
		t.Fatal(err)
	}
	wantCfg := vit.Config{ImageSize: 8, PatchSize: 4, Channels: 3, Dim: 16, Depth: 2, Heads: 2, MLPDim: 32,
		Classes: 3, QKVBias: true, LNEps: 1e-6, ClassToken: true, Pool: vit.PoolCLS}
	if want.Config != wantCfg {
		t.Fatalf("config %+v, want %+v", want.Config, wantCfg)
	}
	for _, tc := range []struct {
		file   string
		family Family
		tol    float64
	}{
		{"timm_wrapped.pth", Timm, 0},              // {'model': {'module.…'}, 'args': Namespace, …}
		{"tv_legacy.pth", Torchvision, 0},          // pre-1.6 non-zip format
		{"tv_half_strided.pth", Torchvision, 2e-3}, // float16, one column-major view
	} {
		t.Run(tc.file, func(t *testing.T) {
			got, info, err := Load("testdata/"+tc.file, opt)
			if err != nil {
				t.Fatal(err)
			}
			if info.Format != FormatPyTorch || info.Family != tc.family || got.Config != wantCfg {
				t.Errorf("format %q family %q config %+v", info.Format, info.Family, got.Config)
			}
			sameWeights(t, tc.file, got, want, tc.tol)
		})
	}
	// Also from memory, as the browser does.
	b, err := os.ReadFile("testdata/timm_wrapped.pth")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := LoadBytes("picked.pth", b, opt); err != nil {
		t.Fatal(err)
	}
}

// Storages are read in place from stored records (torch's way) and copied
// out of compressed ones; both give the same weights, and a stored record
// whose bytes do not match its CRC-32 is refused.
func TestPyTorchStoredAndDeflated(t *testing.T) {
	orig, err := os.ReadFile("testdata/timm_wrapped.pth")
	if err != nil {
		t.Fatal(err)
	}
	zr, err := zip.NewReader(bytes.NewReader(orig), int64(len(orig)))
	if err != nil {
		t.Fatal(err)
	}
	var deflated bytes.Buffer
	zw := zip.NewWriter(&deflated)
	corrupt := slices.Clone(orig)
	flipped := false
	for _, f := range zr.File {
		if f.Method != zip.Store {
			t.Fatalf("%s: torch stores its records, this one has method %d", f.Name, f.Method)
		}
		if !flipped && strings.Contains(f.Name, "/data/") && f.UncompressedSize64 > 0 {
			off, err := f.DataOffset()
			if err != nil {
				t.Fatal(err)
			}
			corrupt[off] ^= 1
			flipped = true
		}
		r, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		w, err := zw.CreateHeader(&zip.FileHeader{Name: f.Name, Method: zip.Deflate})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(w, r); err != nil {
			t.Fatal(err)
		}
		r.Close()
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	opt := Options{Override: &vit.Config{Heads: 2}}
	want, _, err := LoadBytes("stored.pth", orig, opt)
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := LoadBytes("deflated.pth", deflated.Bytes(), opt)
	if err != nil {
		t.Fatal(err)
	}
	sameWeights(t, "deflated.pth", got, want, 0)
	m, _, err := LoadBytes("corrupt.pth", corrupt, opt)
	if m != nil {
		t.Error("model returned with an error")
	}
	mustContain(t, err, "corrupt.pth: ", "checksum error")
}
