package vit

import (
	"math/rand/v2"
	"testing"
)

// B16 is ViT-B/16 (timm vit_base_patch16_224) for benchmarks.
var b16 = Config{ImageSize: 224, PatchSize: 16, Channels: 3, Dim: 768, Depth: 12, Heads: 12, MLPDim: 3072,
	Classes: 1000, QKVBias: true, LNEps: 1e-6, ClassToken: true, Pool: PoolCLS}

// FLOPs of one B/16 forward (multiply-adds ×2): patch embed, qkv, scores,
// weighted values, proj, fc1, fc2 and the head.
func forwardFLOPs(c Config) float64 {
	n, d, m := float64(c.NumTokens()), float64(c.Dim), float64(c.MLPDim)
	perBlock := 2 * (n*d*3*d + 2*n*n*d + n*d*d + 2*n*d*m)
	return float64(c.Depth)*perBlock + 2*float64(c.NumPatches())*d*float64(c.Channels*c.PatchSize*c.PatchSize) + 2*d*float64(c.Classes)
}

func BenchmarkForwardB16(b *testing.B) {
	m, err := NewRandom(b16, 1)
	if err != nil {
		b.Fatal(err)
	}
	img := NewTensor(3, 224, 224)
	rng := rand.New(rand.NewPCG(1, 1))
	for i := range img.Data {
		img.Data[i] = float32(rng.NormFloat64())
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := m.Forward(img, Options{}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(forwardFLOPs(b16)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}

func BenchmarkMatMulT(b *testing.B) {
	// The B/16 fc1 shape: 197 tokens × 768 → 3072.
	m, n, k := 197, 3072, 768
	rng := rand.New(rand.NewPCG(1, 1))
	x, w, out := make([]float32, m*k), make([]float32, n*k), make([]float32, m*n)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	for i := range w {
		w[i] = float32(rng.NormFloat64())
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		MatMulT(out, x, w, m, n, k)
	}
	b.ReportMetric(2*float64(m*n*k)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}
