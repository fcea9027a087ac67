//go:build !js

package app

import (
	"vitlens/vit"
	"vitlens/vit/lens"
)

// openGPU natively: the app's components only run in the browser; this
// keeps the package (and its tests) buildable without cgo.
func openGPU(m *vit.Model) (be lens.Backend, note string) {
	return nil, "native build: CPU only"
}
