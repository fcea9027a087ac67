package preprocess

import (
	"fmt"
	"image"
	"io"
	"sync"

	"vitlens/vit"
)

// A 64-megapixel image costs about 300 MB on its way to a 224×224 tensor
// (96 MB of decoded JPEG, 192 MB of RGB raster, the resampling pass), and a
// run decodes one image per thread: eight such images took 2.5 GB on two
// threads and 4.1 GB on four. So the full-size pixels held at once, by all
// goroutines together, are bounded by InFlightPixels whatever the thread
// count: small images pass in their hundreds, a 64-megapixel one waits for
// the room it needs. Go's image/jpeg cannot decode at a reduced scale, so
// the bound is on how many full-size images exist, and each is released as
// soon as its tensor is made.

// InFlightPixels is how many full-size pixels may be decoded or converted
// at once across the process: one image at the MaxPixels limit.
const InFlightPixels = MaxPixels

// inFlight is the process-wide budget behind InFlightPixels.
var inFlight = newPixelBudget(InFlightPixels)

// pixelBudget is a first-come, first-served weighted semaphore: a large
// image waiting for room is not overtaken by small ones forever.
type pixelBudget struct {
	mu      sync.Mutex
	size    int // the whole budget
	free    int
	waiters []pixelWaiter
}

type pixelWaiter struct {
	n     int
	ready chan struct{}
}

func newPixelBudget(n int) *pixelBudget { return &pixelBudget{size: n, free: n} }

// hold takes n pixels from the budget (at most all of it), waiting for
// room, and returns the function that gives them back.
func (b *pixelBudget) hold(n int) (release func()) {
	b.mu.Lock()
	n = min(max(n, 1), b.size)
	if len(b.waiters) == 0 && b.free >= n {
		b.free -= n
		b.mu.Unlock()
	} else {
		w := pixelWaiter{n: n, ready: make(chan struct{})}
		b.waiters = append(b.waiters, w)
		b.mu.Unlock()
		<-w.ready
	}
	var once sync.Once
	return func() { once.Do(func() { b.give(n) }) }
}

func (b *pixelBudget) give(n int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.free += n
	for len(b.waiters) > 0 && b.free >= b.waiters[0].n {
		w := b.waiters[0]
		b.waiters = b.waiters[1:]
		b.free -= w.n
		close(w.ready)
	}
}

func pixels(img image.Image) int {
	r := img.Bounds()
	return r.Dx() * r.Dy()
}

// DecodeWith decodes an image as Decode does and passes it to use while its
// pixels are held in the process-wide budget (see InFlightPixels); the
// image must not be kept after use returns, and use must not call Decode or
// Apply, which take from the same budget (it could wait on itself).
func DecodeWith(r io.Reader, name string, use func(image.Image) error) error {
	return decodeWith(r, name, MaxPixels, use)
}

// DecodeInput decodes an image and preprocesses it into the model's input
// in one step, so that at most InFlightPixels full-size pixels are held at
// once however many goroutines call it.
func DecodeInput(r io.Reader, name string, p Preset, imageSize int) (*vit.Tensor, error) {
	var t *vit.Tensor
	err := DecodeWith(r, name, func(img image.Image) error {
		var err error
		if t, err = p.apply(img, imageSize); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		return nil
	})
	return t, err
}
