package preprocess

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"image"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"vitlens/vit"
)

// Fixtures come from tools/reference/make_preprocess_golden.py (PIL 9.4 +
// torchvision 0.14); see that script for how each pipeline was rebuilt.
const goldenDir = "../../testdata/preprocess"

// jpegTolerance bounds the 8-bit difference for JPEG inputs, where Go's IDCT
// (not libjpeg's) is the one remaining source of error.
const jpegTolerance = 4

type goldenTensor struct {
	dtype string
	shape []int
	f32   []float32
	u8    []uint8
}

// readSafetensors is a minimal reader: the fixtures only hold F32 and U8.
func readSafetensors(t *testing.T, path string) map[string]goldenTensor {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := binary.LittleEndian.Uint64(raw[:8])
	var header map[string]json.RawMessage
	if err := json.Unmarshal(raw[8:8+n], &header); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	body := raw[8+n:]
	out := map[string]goldenTensor{}
	for name, msg := range header {
		if name == "__metadata__" {
			continue
		}
		var info struct {
			Dtype   string `json:"dtype"`
			Shape   []int  `json:"shape"`
			Offsets [2]int `json:"data_offsets"`
		}
		if err := json.Unmarshal(msg, &info); err != nil {
			t.Fatalf("%s: %s: %v", path, name, err)
		}
		data := body[info.Offsets[0]:info.Offsets[1]]
		g := goldenTensor{dtype: info.Dtype, shape: info.Shape}
		switch info.Dtype {
		case "F32":
			g.f32 = make([]float32, len(data)/4)
			for i := range g.f32 {
				g.f32[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:]))
			}
		case "U8":
			g.u8 = data
		default:
			t.Fatalf("%s: %s: unexpected dtype %s", path, name, info.Dtype)
		}
		out[name] = g
	}
	return out
}

// pixelError is the largest difference between got and the expected tensor
// in 8-bit pixel units (x*std+mean)*255, the unit in which Pillow rounds.
func pixelError(p Preset, got *vit.Tensor, want goldenTensor) float64 {
	plane := got.Numel() / 3
	worst := 0.0
	for i, v := range got.Data {
		ch := i / plane
		g := (float64(v)*float64(p.Std[ch]) + float64(p.Mean[ch])) * 255
		var w float64
		if want.u8 != nil {
			w = float64(want.u8[i])
		} else {
			w = (float64(want.f32[i])*float64(p.Std[ch]) + float64(p.Mean[ch])) * 255
		}
		worst = math.Max(worst, math.Abs(g-w))
	}
	return worst
}

func TestGoldenAgainstPillow(t *testing.T) {
	golden := readSafetensors(t, filepath.Join(goldenDir, "golden.safetensors"))
	var names []string
	for name := range golden {
		names = append(names, name)
	}
	sort.Strings(names)
	worst := map[string]float64{}
	cases := map[string]int{}
	for _, name := range names {
		parts := strings.SplitN(name, "/", 3)
		if parts[0] == "decoded" {
			continue
		}
		preset, err := PresetByName(parts[0])
		if err != nil {
			t.Fatal(err)
		}
		size, _ := strconv.Atoi(parts[1])
		file := parts[2]
		// JPEG decoders differ (Go vs libjpeg-turbo); measured separately.
		tol := 1.0
		if strings.HasSuffix(file, ".jpg") {
			tol = jpegTolerance
		}
		t.Run(name, func(t *testing.T) {
			img, err := DecodeFile(filepath.Join(goldenDir, file))
			if err != nil {
				t.Fatal(err)
			}
			got, err := preset.Apply(img, size)
			if err != nil {
				t.Fatal(err)
			}
			// The file-to-tensor path of batch runs gives the same tensor.
			f, err := os.Open(filepath.Join(goldenDir, file))
			if err != nil {
				t.Fatal(err)
			}
			fused, err := DecodeInput(f, file, preset, size)
			f.Close()
			if err != nil || !slices.Equal(fused.Data, got.Data) {
				t.Errorf("DecodeInput differs from Decode + Apply (%v)", err)
			}
			want := golden[name]
			if fmt.Sprint(got.Shape) != fmt.Sprint(want.shape) {
				t.Fatalf("shape %v, want %v", got.Shape, want.shape)
			}
			e := pixelError(preset, got, want)
			key := preset.Name
			if strings.HasSuffix(file, ".jpg") {
				key += " (jpeg)"
			}
			worst[key] = math.Max(worst[key], e)
			cases[key]++
			if e > tol {
				t.Errorf("max |Δ| = %.4g pixel levels, want <= %g", e, tol)
			}
		})
	}
	var keys []string
	for k := range worst {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		t.Logf("%-14s %2d cases, max |Δ| = %.3g pixel levels (of 255)", k, cases[k], worst[k])
	}
}

// The JPEG decoders themselves differ (Go's IDCT is not libjpeg's islow);
// this measures by how much on every chroma subsampling, so the JPEG
// tolerance above stays honest.
func TestJPEGDecodeVersusPIL(t *testing.T) {
	golden := readSafetensors(t, filepath.Join(goldenDir, "golden.safetensors"))
	for _, file := range []string{"photo_64x48.jpg", "photo_37x29_444.jpg", "photo_37x29_422.jpg", "photo_37x29_420.jpg"} {
		want := golden["decoded/"+file]
		img, err := DecodeFile(filepath.Join(goldenDir, file))
		if err != nil {
			t.Fatal(err)
		}
		got := toRGB(img)
		if len(got.pix) != len(want.u8) {
			t.Fatalf("%s: %d values, want %d", file, len(got.pix), len(want.u8))
		}
		maxd, sum := 0, 0
		for i, v := range got.pix {
			d := int(v) - int(want.u8[i])
			maxd = max(maxd, d, -d)
			sum += max(d, -d)
		}
		mean := float64(sum) / float64(len(got.pix))
		t.Logf("%-20s %T %v: max |Δ| = %d, mean |Δ| = %.3f levels", file, img, subsampling(img), maxd, mean)
		if maxd > jpegTolerance || mean > 0.25 {
			t.Errorf("%s: decoded pixels differ from PIL's by up to %d levels (mean %.3f)", file, maxd, mean)
		}
	}
}

func subsampling(img image.Image) string {
	if y, ok := img.(*image.YCbCr); ok {
		return y.SubsampleRatio.String()
	}
	return "-"
}

// WebP must decode to libwebp's pixels exactly: lossy through our
// re-implementation of its upsampler and BT.601 conversion, lossless as is.
func TestWebPDecodeVersusPIL(t *testing.T) {
	golden := readSafetensors(t, filepath.Join(goldenDir, "golden.safetensors"))
	for _, file := range []string{"lossy_37x29.webp", "lossy_38x30.webp", "lossy_alpha_21x18.webp", "lossless_20x15.webp"} {
		want := golden["decoded/"+file]
		img, err := DecodeFile(filepath.Join(goldenDir, file))
		if err != nil {
			t.Fatal(err)
		}
		got := toRGB(img)
		if len(got.pix) != len(want.u8) {
			t.Fatalf("%s: %d values, want %d", file, len(got.pix), len(want.u8))
		}
		maxd := 0
		for i, v := range got.pix {
			d := int(v) - int(want.u8[i])
			maxd = max(maxd, d, -d)
		}
		t.Logf("%-24s decoded as %T: max |Δ| = %d levels", file, img, maxd)
		if maxd > 0 {
			t.Errorf("%s: decoded pixels differ from PIL's by up to %d levels", file, maxd)
		}
	}
}
