package lens

import "vitlens/vit"

// Backend runs the model and the lens on a batch of preprocessed images. The
// pure-Go CPU backend is the reference; the WebGPU backend (package gpu)
// implements the same interface and is tested against it.
type Backend interface {
	// Name says what runs, e.g. "cpu (2 threads)" or "webgpu: llvmpipe".
	Name() string
	Analyze(images []*vit.Tensor, req Request) ([]*Result, error)
	Close() error
}
