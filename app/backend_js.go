//go:build js

package app

import (
	"fmt"
	"strings"
	"sync"

	"vitlens/gpu"
	"vitlens/vit"
	"vitlens/vit/lens"
)

// pageGPU is the page's WebGPU device: opened on first use and kept for the page's life,
// shared by both models' workers, so its pipelines are compiled once; it is
// opened again only after it was lost.
var pageGPU struct {
	mu  sync.Mutex
	dev *gpu.Device
	err error // why there is none (no adapter): not asked again
}

// openGPU uploads m's weights to the page's WebGPU device, or says why the
// CPU runs instead.
func openGPU(m *vit.Model) (be lens.Backend, note string) {
	pageGPU.mu.Lock()
	defer pageGPU.mu.Unlock()
	if pageGPU.dev == nil && pageGPU.err == nil {
		pageGPU.dev, pageGPU.err = gpu.OpenDevice()
	}
	if gpu.ErrNoAdapter(pageGPU.err) {
		return nil, "WebGPU unavailable: this browser offers no adapter"
	}
	if pageGPU.err != nil {
		return nil, fmt.Sprintf("WebGPU unavailable: %v", pageGPU.err)
	}
	g, err := pageGPU.dev.NewBackend(m, gpu.Options{})
	if err != nil && pageGPU.dev.Lost() != nil {
		// A lost device (driver reset, tab in the background too long):
		// a new one, once.
		pageGPU.dev.Close()
		if pageGPU.dev, pageGPU.err = gpu.OpenDevice(); pageGPU.err == nil {
			g, err = pageGPU.dev.NewBackend(m, gpu.Options{})
		} else {
			err = pageGPU.err
		}
	}
	if err != nil {
		return nil, fmt.Sprintf("WebGPU unavailable: %v", err)
	}
	if name := strings.ToLower(g.Name()); strings.Contains(name, "swiftshader") || strings.Contains(name, "fallback") {
		return g, "software WebGPU adapter: the CPU may be faster (Compute on: CPU)"
	}
	return g, ""
}
