package preprocess

import (
	"bytes"
	"image"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"vitlens/vit"
)

// FuzzDecodeInput: no file content may panic the decoders or the
// preprocessing; an error names the file, a success is a full tensor. Seeds:
// every golden image (each format and colour model), cut and bit-flipped.
func FuzzDecodeInput(f *testing.F) {
	files, err := filepath.Glob(filepath.Join(goldenDir, "*.*"))
	if err != nil {
		f.Fatal(err)
	}
	for _, p := range files {
		if strings.HasSuffix(p, ".safetensors") {
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil || len(b) > 64<<10 {
			continue // large seeds slow the fuzzer down
		}
		f.Add(b, uint8(0))
		f.Add(b[:len(b)/2], uint8(1))
		c := append([]byte{}, b...)
		c[len(c)/3] ^= 0x40
		f.Add(c, uint8(2))
	}
	f.Add([]byte("GIF89a"), uint8(3))
	f.Fuzz(func(t *testing.T, data []byte, which uint8) {
		p := presets[int(which)%len(presets)]
		// DecodeInput's path with a 1-megapixel limit: a forged header may
		// otherwise make every run decode up to 64 megapixels of nothing.
		var x *vit.Tensor
		err := decodeWith(bytes.NewReader(data), "in.img", 1<<20, func(img image.Image) (err error) {
			x, err = p.apply(img, 8)
			return err
		})
		if err != nil {
			if !strings.HasPrefix(err.Error(), "in.img: ") && !strings.HasPrefix(err.Error(), "preprocess ") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		if len(x.Data) != 3*8*8 {
			t.Fatalf("tensor of %d values", len(x.Data))
		}
	})
}
