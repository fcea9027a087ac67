package checkpoint

import (
	"os"
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
