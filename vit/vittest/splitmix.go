// Package vittest holds helpers for tests that compare vitlens against the
// PyTorch references in testdata/reference: a reader for the golden files and
// the deterministic "splitmix" weights that stand in for a real ViT-B/16
// checkpoint (too large to commit) and that tools/reference/splitmix.py
// reproduces bit for bit.
package vittest

import (
	"fmt"
	"strings"

	"vitlens/vit"
)

// B16 is ViT-B/16's shape (timm vit_base_patch16_224) with ImageNet's 1000 classes.
var B16 = vit.Config{ImageSize: 224, PatchSize: 16, Channels: 3, Dim: 768, Depth: 12, Heads: 12, MLPDim: 3072,
	Classes: 1000, QKVBias: true, LNEps: 1e-6, ClassToken: true, Pool: vit.PoolCLS}

// NamedShape is one timm tensor name with its PyTorch shape.
type NamedShape struct {
	Name  string
	Shape []int
}

// TimmShapes lists the tensors a timm VisionTransformer of this config stores,
// with PyTorch shapes, in a fixed order (the order splitmix.py uses).
// Mean-pooled models get fc_norm instead of norm; QKVBias=false drops
// attn.qkv.bias; no class token drops cls_token.
func TimmShapes(cfg vit.Config) []NamedShape {
	d, p := cfg.Dim, cfg.PatchSize
	s := []NamedShape{
		{"patch_embed.proj.weight", []int{d, cfg.Channels, p, p}},
		{"patch_embed.proj.bias", []int{d}},
	}
	if cfg.ClassToken {
		s = append(s, NamedShape{"cls_token", []int{1, 1, d}})
	}
	s = append(s, NamedShape{"pos_embed", []int{1, cfg.NumTokens(), d}})
	for i := 0; i < cfg.Depth; i++ {
		b := fmt.Sprintf("blocks.%d.", i)
		s = append(s,
			NamedShape{b + "norm1.weight", []int{d}},
			NamedShape{b + "norm1.bias", []int{d}},
			NamedShape{b + "attn.qkv.weight", []int{3 * d, d}})
		if cfg.QKVBias {
			s = append(s, NamedShape{b + "attn.qkv.bias", []int{3 * d}})
		}
		s = append(s,
			NamedShape{b + "attn.proj.weight", []int{d, d}},
			NamedShape{b + "attn.proj.bias", []int{d}},
			NamedShape{b + "norm2.weight", []int{d}},
			NamedShape{b + "norm2.bias", []int{d}},
			NamedShape{b + "mlp.fc1.weight", []int{cfg.MLPDim, d}},
			NamedShape{b + "mlp.fc1.bias", []int{cfg.MLPDim}},
			NamedShape{b + "mlp.fc2.weight", []int{d, cfg.MLPDim}},
			NamedShape{b + "mlp.fc2.bias", []int{d}})
	}
	final := "norm"
	if cfg.Pool == vit.PoolMean {
		final = "fc_norm"
	}
	return append(s,
		NamedShape{final + ".weight", []int{d}},
		NamedShape{final + ".bias", []int{d}},
		NamedShape{"head.weight", []int{cfg.Classes, d}},
		NamedShape{"head.bias", []int{cfg.Classes}})
}

// SplitmixTensors returns every timm-named tensor of cfg filled by
// SplitmixTensor. For the B/16 config that is 86.6M values (346 MB).
func SplitmixTensors(cfg vit.Config) map[string]*vit.Tensor {
	out := make(map[string]*vit.Tensor)
	for _, ns := range TimmShapes(cfg) {
		out[ns.Name] = SplitmixTensor(ns.Name, ns.Shape...)
	}
	return out
}

// SplitmixTensor fills a tensor deterministically from its name: element j is
// a uniform u in [-1, 1) drawn from splitmix64 seeded with FNV-1a(name), scaled
// by the tensor's kind so activations stay in a realistic range.
func SplitmixTensor(name string, shape ...int) *vit.Tensor {
	t := vit.NewTensor(shape...)
	seed := fnv1a64(name)
	norm := isNorm(name)
	bias := strings.HasSuffix(name, ".bias")
	for j := range t.Data {
		u := uniform(seed, uint64(j))
		var v float64
		// The explicit float64 conversions round each product on its own, so no
		// platform may fuse it into an FMA: numpy never does.
		switch {
		case norm && !bias:
			v = 1 + float64(0.1*u)
		case norm:
			v = 0.1 * u
		case name == "pos_embed" || name == "cls_token":
			v = 0.1 * u
		case bias:
			v = 0.02 * u
		default:
			v = 0.05 * u
		}
		t.Data[j] = float32(v)
	}
	return t
}

func fnv1a64(s string) uint64 {
	h := uint64(0xcbf29ce484222325)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 0x100000001b3
	}
	return h
}

// uniform is splitmix64's output for counter j+1, reduced to 24 bits so the
// value is exact in float32 before scaling.
func uniform(seed, j uint64) float64 {
	z := seed + (j+1)*0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	z ^= z >> 31
	return float64(z>>40)/(1<<23) - 1
}

// isNorm matches norm1, norm2, norm and fc_norm parameters: the module name
// (the part before .weight/.bias) contains "norm".
func isNorm(name string) bool {
	i := strings.LastIndexByte(name, '.')
	if i < 0 {
		return false
	}
	mod := name[:i]
	if j := strings.LastIndexByte(mod, '.'); j >= 0 {
		mod = mod[j+1:]
	}
	return strings.Contains(mod, "norm")
}
