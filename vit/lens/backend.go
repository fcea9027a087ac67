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

// Pipeliner is a Backend that overlaps consecutive calls: Start hands a
// batch to the device and returns while it computes, so the caller can
// prepare and start the next batch before it collects this one with Wait.
// Results are exactly Analyze's. Callers collect in the order they started.
type Pipeliner interface {
	Backend
	Start(images []*vit.Tensor, req Request) (Pending, error)
}

// Pending is a started call; Wait returns its results (once).
type Pending interface {
	Wait() ([]*Result, error)
}

// Start starts a call on b: pipelined where b is a Pipeliner, otherwise a
// Pending that runs Analyze when waited on (so a caller's pipelined loop
// needs no second form for the CPU).
func Start(b Backend, images []*vit.Tensor, req Request) (Pending, error) {
	if p, ok := b.(Pipeliner); ok {
		return p.Start(images, req)
	}
	return deferredCall{b, images, req}, nil
}

type deferredCall struct {
	b      Backend
	images []*vit.Tensor
	req    Request
}

func (d deferredCall) Wait() ([]*Result, error) { return d.b.Analyze(d.images, d.req) }
