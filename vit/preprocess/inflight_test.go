package preprocess

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/png"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// However many goroutines hold pixels, the total never exceeds the budget,
// an oversized request takes the whole budget instead of blocking forever,
// and a large request waiting for room is not overtaken by later small ones.
func TestPixelBudgetBounds(t *testing.T) {
	b := newPixelBudget(100)
	var held, peak atomic.Int64
	var wg sync.WaitGroup
	for g := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range 50 {
				n := []int{1, 30, 60, 100, 500}[(g+k)%5]
				release := b.hold(n)
				w := int64(min(n, 100))
				now := held.Add(w)
				for {
					p := peak.Load()
					if now <= p || peak.CompareAndSwap(p, now) {
						break
					}
				}
				time.Sleep(10 * time.Microsecond)
				held.Add(-w)
				release()
				release() // a second call gives nothing back
			}
		}()
	}
	wg.Wait()
	if p := peak.Load(); p > 100 || p < 60 {
		t.Errorf("peak %d pixels held, want at most the budget of 100 (and some concurrency)", p)
	}
	if b.free != 100 || len(b.waiters) != 0 {
		t.Errorf("after all releases: %d free, %d waiting", b.free, len(b.waiters))
	}

	// First come, first served.
	release := b.hold(80)
	bigDone := make(chan struct{})
	go func() { b.hold(50)(); close(bigDone) }()
	for {
		b.mu.Lock()
		n := len(b.waiters)
		b.mu.Unlock()
		if n == 1 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	smallDone := make(chan struct{})
	go func() { b.hold(10)(); close(smallDone) }() // would fit now, but must queue
	select {
	case <-smallDone:
		t.Fatal("a small request overtook the waiting large one")
	case <-time.After(50 * time.Millisecond):
	}
	release()
	<-bigDone
	<-smallDone
}

// Decode takes the pixels from the budget only while it decodes; an image
// over MaxPixels is refused from its header alone.
func TestDecodeWithHoldsPixels(t *testing.T) {
	var buf bytes.Buffer
	if err := png.Encode(&buf, image.NewGray(image.Rect(0, 0, 300, 200))); err != nil {
		t.Fatal(err)
	}
	err := DecodeWith(bytes.NewReader(buf.Bytes()), "x.png", func(img image.Image) error {
		inFlight.mu.Lock()
		defer inFlight.mu.Unlock()
		if held := InFlightPixels - inFlight.free; held < 300*200 {
			t.Errorf("%d pixels held while the image is in use, want at least 60000", held)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if inFlight.free != InFlightPixels {
		t.Errorf("%d pixels still held after use", InFlightPixels-inFlight.free)
	}
	// A header claiming 65536x65536 pixels.
	var hdr bytes.Buffer
	png.Encode(&hdr, image.NewGray(image.Rect(0, 0, 1, 1)))
	forged := hdr.Bytes()
	copy(forged[16:24], []byte{0, 1, 0, 0, 0, 1, 0, 0})
	binary.BigEndian.PutUint32(forged[29:], crc32.ChecksumIEEE(forged[12:29])) // IHDR's CRC
	err = DecodeWith(bytes.NewReader(forged), "big.png", func(image.Image) error { t.Error("decoded"); return nil })
	if err == nil || !strings.Contains(err.Error(), "big.png: 65536x65536 pixels exceeds the limit") {
		t.Errorf("forged header: %v", err)
	}
}
