package lens_test

import (
	"testing"

	"vitlens/vit"
	"vitlens/vit/bundle"
	"vitlens/vit/lens"
)

// The demo model's forward alone and with the lens on all four sites, plain
// and tuned (translators on hs and hs_mid): the ratios are the lenses' cost
// (`vitlens bench` prints the plain one for B/16).
func BenchmarkDemo(b *testing.B) {
	d, err := bundle.Demo(bundle.Options{})
	if err != nil {
		b.Fatal(err)
	}
	img := vit.NewTensor(3, 28, 28)
	for i := range img.Data {
		img.Data[i] = float32(i%13) / 13
	}
	cpu := lens.NewCPU(d.Model)
	b.Run("forward", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, err := d.Model.Forward(img, vit.Options{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, bc := range []struct {
		name string
		lens *lens.Translators
	}{{"lens-all-sites", nil}, {"lens-all-sites-tuned", lens.NewTranslators(d.Model.Config.Dim, d.Model.Config.Depth)}} {
		b.Run(bc.name, func(b *testing.B) {
			req := lens.Request{Sites: vit.AllSites(), TopK: 5, Lens: bc.lens}
			for i := 0; i < b.N; i++ {
				if _, err := cpu.Analyze([]*vit.Tensor{img}, req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
