package lens_test

import (
	"math/rand/v2"
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
	// The forward with the tensors the folded lens reads (every block's hs,
	// attn and mlp outputs, and the embeddings): the part of the lens's cost
	// that is the forward's own.
	b.Run("forward-lens-taps", func(b *testing.B) {
		var taps vit.Taps
		taps.Embed = true
		for _, s := range vit.AllSites() {
			taps.Sites[s] = true
		}
		for b.Loop() {
			if _, err := m.Forward(img, vit.Options{Taps: taps}); err != nil {
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

// One token's row of a B/16-sized lens (1000 classes, dim 768) finished and
// read out, the step a B/16 image repeats 9456 times (4 sites × 12 blocks ×
// 197 tokens), and its parts.
func BenchmarkRow(b *testing.B) {
	c := vit.Config{ImageSize: 32, PatchSize: 16, Channels: 3, Dim: 768, Depth: 1, Heads: 12, MLPDim: 64,
		Classes: 1000, QKVBias: true, LNEps: 1e-6, ClassToken: true, Pool: vit.PoolCLS}
	m, err := vit.NewRandom(c, 1)
	if err != nil {
		b.Fatal(err)
	}
	p := lens.NewProjector(m)
	rng := rand.New(rand.NewPCG(1, 2))
	h, ref := make([]float32, c.Dim), make([]float32, c.Classes)
	for i := range h {
		h[i] = float32(rng.NormFloat64())
	}
	for i := range ref {
		ref[i] = float32(rng.NormFloat64() * 3)
	}
	z := p.Raw(nil, h, 1)
	logits := make([]float32, c.Classes)
	r := lens.NewRowReader(ref, 5)
	b.Run("finish", func(b *testing.B) {
		for b.Loop() {
			p.FinishRow(logits, z, h)
		}
	})
	b.Run("normstats", func(b *testing.B) {
		for b.Loop() {
			vit.NormStats(h, 1e-6)
		}
	})
	b.Run("read", func(b *testing.B) { // rank, top-5, entropy, KL
		for b.Loop() {
			r.Read(logits, 7)
		}
	})
	top := make([]int32, 5)
	b.Run("topk", func(b *testing.B) {
		for b.Loop() {
			lens.TopK(top, logits)
		}
	})
}
