package main

import (
	"vitlens/gpu"
	"vitlens/vit"
	"vitlens/vit/lens"
)

// The WebGPU backend (wgpu-native through cgo): --backend gpu|auto.
func init() {
	openGPU = func(m *vit.Model, f16 bool) (lens.Backend, error) {
		return gpu.New(m, gpu.Options{F16Weights: f16})
	}
}
