//go:build !js

package app

import (
	"vitlens/vit"
	"vitlens/vit/lens"
)

// openBackend natively: the app's components only run in the browser; this
// keeps the package (and its tests) buildable without cgo.
func openBackend(m *vit.Model, allowGPU bool) (be lens.Backend, note string) {
	return lens.NewCPU(m), "native build: CPU only"
}
