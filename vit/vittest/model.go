package vittest

import (
	"testing"

	"vitlens/vit"
)

// SmallConfig is the tiny ViT the batch-experiment tests run: 16×16 images,
// patch 4 ([CLS] + 16 tokens), 3 blocks, 4 classes.
var SmallConfig = vit.Config{ImageSize: 16, PatchSize: 4, Channels: 3, Dim: 16, Depth: 3, Heads: 2, MLPDim: 32,
	Classes: 4, QKVBias: true, LNEps: 1e-6, ClassToken: true, Pool: vit.PoolCLS}

// SharpModel is a seeded random SmallConfig model whose head is scaled up
// 30×, so ranks spread out and predictions react to perturbations (timm's
// 0.02 init makes every logit nearly equal).
func SharpModel(t testing.TB) *vit.Model {
	t.Helper()
	m, err := vit.NewRandom(SmallConfig, 42)
	if err != nil {
		t.Fatal(err)
	}
	m.Head = m.Head.Unpacked()
	for i := range m.Head.W {
		m.Head.W[i] *= 30
	}
	m.Pack()
	return m
}
