package lens_test

import (
	"testing"

	"vitlens/vit"
	"vitlens/vit/bundle"
	"vitlens/vit/lens"
)

// The demo model's forward alone and with the lens on all four sites, plain
// and tuned (translators on hs and hs_mid): the ratios are the lenses' cost
// (`vitlens bench` prints the plain one for B/16, timing the two in turn).
func BenchmarkDemo(b *testing.B) {
	d, err := bundle.Demo(bundle.Options{})
	if err != nil {
		b.Fatal(err)
	}
	img := vit.NewTensor(3, 28, 28)
	for i := range img.Data {
		img.Data[i] = float32(i%13) / 13
	}
	benchLens(b, d.Model, img)
}

// The same on a B/16-sized random model (for profiles: -cpuprofile).
func BenchmarkB16(b *testing.B) {
	c := vit.Config{ImageSize: 224, PatchSize: 16, Channels: 3, Dim: 768, Depth: 12, Heads: 12, MLPDim: 3072,
		Classes: 1000, QKVBias: true, LNEps: 1e-6, ClassToken: true, Pool: vit.PoolCLS}
	m, err := vit.NewRandom(c, 1)
	if err != nil {
		b.Fatal(err)
	}
	benchLens(b, m, vit.RandomImages(c, 1, 1)[0])
}

func benchLens(b *testing.B, m *vit.Model, img *vit.Tensor) {
	cpu := lens.NewCPU(m)
	b.Run("forward", func(b *testing.B) {
		for b.Loop() {
			if _, err := m.Forward(img, vit.Options{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, bc := range []struct {
		name string
		lens *lens.Translators
	}{{"lens-all-sites", nil}, {"lens-all-sites-tuned", lens.NewTranslators(m.Config.Dim, m.Config.Depth)}} {
		b.Run(bc.name, func(b *testing.B) {
			req := lens.Request{Sites: vit.AllSites(), TopK: 5, Lens: bc.lens}
			for b.Loop() {
				if _, err := cpu.Analyze([]*vit.Tensor{img}, req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
