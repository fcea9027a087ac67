package checkpoint

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/nlpodyssey/safetensors"

	"vitlens/vit"
)

// FuzzLoadBytes: no input may panic, and every error names the file. The
// seeds (valid files of each family and format, truncations, bit flips) run
// in plain `go test`.
func FuzzLoadBytes(f *testing.F) {
	var seeds [][]byte
	small := tinyConfig() // kept tiny: the fuzzer mutates small inputs far better
	small.Dim, small.Heads, small.Depth, small.MLPDim, small.ImageSize, small.Channels = 8, 2, 1, 8, 8, 1
	m := randomModel(f, small)
	for _, fam := range []Family{Timm, HF, Torchvision} {
		seeds = append(seeds, safetensorsFile(f, exporters[fam](m), map[string]string{"config": configJSON(small)}, safetensors.F16))
	}
	gap := small
	gap.ClassToken, gap.Pool, gap.PostNorm = false, vit.PoolMean, true
	seeds = append(seeds, safetensorsFile(f, exportTimm(randomModel(f, gap)), nil, safetensors.F32))
	for _, name := range []string{"fuzz_tiny.pth", "fuzz_tiny_legacy.pth"} {
		b, err := os.ReadFile("testdata/" + name)
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, b)
	}
	for _, s := range seeds {
		f.Add(s)
		for _, cut := range []int{1, 8, 9, len(s) / 3, len(s) / 2, len(s) - 1} {
			f.Add(s[:cut])
		}
		for _, at := range []int{0, 3, 9, 40, 120, len(s) / 2, len(s) - 3} {
			c := append([]byte{}, s...)
			c[at] ^= 0x10
			f.Add(c)
		}
	}
	f.Add([]byte{})
	f.Add([]byte("\x89PNG\r\n\x1a\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		// A hang is a failure too; panicking from here makes the fuzzer
		// record the input.
		done := make(chan struct{})
		defer close(done)
		go func() {
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				panic(fmt.Sprintf("LoadBytes still running after 20 s on %d bytes", len(data)))
			}
		}()
		// Heads 1 lets the dim-4 PyTorch seeds load (their dim is no multiple of 64).
		opt := Options{NonStrict: len(data)%2 == 0, Override: &vit.Config{Heads: 1}}
		m, _, err := LoadBytes("fuzz.bin", data, opt)
		if err != nil {
			if m != nil || !strings.HasPrefix(err.Error(), "fuzz.bin: ") {
				t.Fatalf("error %q (model %v)", err, m != nil)
			}
			return
		}
		if err := m.CheckShapes(); err != nil {
			t.Fatal(err)
		}
	})
}
