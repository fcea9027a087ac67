//go:build js

package app

import (
	"fmt"
	"strings"

	"vitlens/gpu"
	"vitlens/vit"
	"vitlens/vit/lens"
)

// openBackend prefers WebGPU and falls back to the pure-Go CPU backend,
// saying why in note.
func openBackend(m *vit.Model, allowGPU bool) (be lens.Backend, note string) {
	if !allowGPU {
		return lens.NewCPU(m), "WebGPU off (chosen)"
	}
	g, err := gpu.New(m, gpu.Options{})
	if gpu.ErrNoAdapter(err) {
		return lens.NewCPU(m), "WebGPU unavailable: this browser offers no adapter"
	}
	if err != nil {
		return lens.NewCPU(m), fmt.Sprintf("WebGPU unavailable: %v", err)
	}
	if name := strings.ToLower(g.Name()); strings.Contains(name, "swiftshader") || strings.Contains(name, "fallback") {
		return g, "software WebGPU adapter: the CPU may be faster (Compute on: CPU)"
	}
	return g, ""
}
