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
		defer panicAfter(20*time.Second, "LoadBytes", len(data))()
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

// FuzzReadSafetensors fuzzes the safetensors reader alone (FuzzLoadBytes
// covers both formats and the model build): no panic, errors name the file,
// and every tensor read holds exactly the values of its shape.
func FuzzReadSafetensors(f *testing.F) {
	small := tinyConfig()
	small.Dim, small.Heads, small.Depth, small.MLPDim, small.ImageSize, small.Channels = 8, 2, 1, 8, 8, 1
	for _, dt := range []safetensors.DType{safetensors.F32, safetensors.F16, safetensors.BF16} {
		f.Add(safetensorsFile(f, exportTimm(randomModel(f, small)), map[string]string{"config": configJSON(small)}, dt))
	}
	f.Add(rawSafetensors(map[string]any{"a": map[string]any{"dtype": "F32", "shape": []int{2}, "data_offsets": []int{0, 8}}}, 8))
	f.Add(rawSafetensors(map[string]any{"a": map[string]any{"dtype": "I64", "shape": []int{1 << 40}, "data_offsets": []int{0, 8}}}, 8))
	f.Fuzz(func(t *testing.T, data []byte) {
		defer panicAfter(10*time.Second, "ReadTensors", len(data))()
		tensors, _, _, err := ReadTensors("w.safetensors", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "w.safetensors: ") {
				t.Fatalf("error %q does not name the file", err)
			}
			return
		}
		for name, x := range tensors {
			n := 1
			for _, d := range x.Shape {
				n *= d
			}
			if n != len(x.Data) {
				t.Fatalf("tensor %q: shape %v but %d values", name, x.Shape, len(x.Data))
			}
		}
	})
}

// FuzzPickle runs the .pth pickle path on raw pickles (the legacy format's
// framing): the scan's budgets must hold for any opcode stream, so no input
// may panic, exhaust memory or take long.
func FuzzPickle(f *testing.F) {
	for _, s := range []string{
		"\x80\x02}q\x00(X\x01\x00\x00\x00aq\x01K\x01u.", // {'a': 1}
		"\x80\x02(((((N.", // unclosed MARKs
		"\x80\x02L1234567890123456789012345678901234567890L\n.",     // a decimal LONG
		"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.", // PyTorch's magic number
		"\x80\x04\x95\x05\x00\x00\x00\x00\x00\x00\x00}\x94)R.",      // a frame
		"\x80\x02cos\nsystem\nX\x02\x00\x00\x00lsq\x00\x85R.",       // a global call
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 2 || data[0] != 0x80 {
			data = append([]byte{0x80, 0x02}, data...) // sniffed as a legacy pickle
		}
		defer panicAfter(10*time.Second, "ReadTensors", len(data))()
		if _, _, _, err := ReadTensors("p.pth", data); err != nil && !strings.HasPrefix(err.Error(), "p.pth: ") {
			t.Fatalf("error %q does not name the file", err)
		}
	})
}

// FuzzConfigJSON: a config.json or --config file of any content is read or
// refused with its name; whatever is accepted is a valid config.
func FuzzConfigJSON(f *testing.F) {
	f.Add([]byte(`{"heads": 4, "ln_eps": 1e-6}`))
	f.Add([]byte(`{"hidden_size": 64, "num_attention_heads": 0}`))
	f.Add([]byte(`{"image_size": [16, 16], "patch_size": 4, "hidden_act": "gelu", "id2label": {"0": "a"}}`))
	f.Add([]byte(`{"heads": -3, "pool": "mean", "post_norm": true, "qkv_bias": false}`))
	f.Add([]byte(`[1, 2]`))
	f.Add([]byte(`{"architecture": "vit_base_patch16_clip_224", "pretrained_cfg": {"tag": "openai"}}`))
	inferred := tinyConfig()
	inferred.Heads = 0
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, _, _, err := mergeConfig(inferred, nil, Options{ConfigJSON: data, ConfigName: "my.json"})
		if err != nil {
			if !strings.Contains(err.Error(), "my.json") && !strings.Contains(err.Error(), "head") && !strings.Contains(err.Error(), "config invalid") {
				t.Fatalf("error %q does not name the file", err)
			}
			return
		}
		if err := cfg.Validate(); err != nil || cfg.Heads < 1 {
			t.Fatalf("accepted an invalid config %+v: %v", cfg, err)
		}
	})
}

// panicAfter makes a hang a failure: panicking from another goroutine
// makes the fuzzer record the input. The returned function disarms it.
func panicAfter(d time.Duration, what string, size int) (stop func()) {
	done := make(chan struct{})
	go func() {
		select {
		case <-done:
		case <-time.After(d):
			panic(fmt.Sprintf("%s still running after %v on %d bytes", what, d, size))
		}
	}()
	return func() { close(done) }
}
