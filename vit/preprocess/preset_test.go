package preprocess

import (
	"image"
	"image/color"
	"math"
	"slices"
	"strings"
	"testing"
)

func TestPresetByName(t *testing.T) {
	var names []string
	for _, p := range Presets() {
		names = append(names, p.Name)
		got, err := PresetByName(p.Name)
		if err != nil || got.Name != p.Name {
			t.Errorf("PresetByName(%q) = %v, %v", p.Name, got.Name, err)
		}
		if d := p.Describe(); !strings.HasPrefix(d, p.Name+": ") || !strings.Contains(d, p.Filter.String()) {
			t.Errorf("Describe() = %q", d)
		}
	}
	if want := []string{"google", "deit", "miil", "cifar", "fmnist"}; !slices.Equal(names, want) {
		t.Errorf("Presets() names = %v, want %v", names, want)
	}
	_, err := PresetByName("imagenet")
	if err == nil || !strings.Contains(err.Error(), `"imagenet"`) || !strings.Contains(err.Error(), "google, deit, miil, cifar, fmnist") {
		t.Errorf("unknown preset error %v should name it and list the known ones", err)
	}
}

func TestResizeTargetAndCropOffsets(t *testing.T) {
	for _, c := range []struct {
		preset string
		size   int
		want   int
	}{
		{"google", 224, 224}, {"deit", 224, 256}, {"deit", 32, 37}, {"deit", 48, 55},
		{"miil", 224, 256}, {"miil", 32, 36}, {"miil", 48, 54}, {"miil", 384, 438},
	} {
		p, _ := PresetByName(c.preset)
		if got := p.resizeTarget(c.size); got != c.want {
			t.Errorf("%s.resizeTarget(%d) = %d, want %d", c.preset, c.size, got, c.want)
		}
	}
	hf, _ := PresetByName("deit")
	tv, _ := PresetByName("miil")
	for _, c := range []struct{ margin, hf, torchvision int }{
		{0, 0, 0}, {1, 0, 0}, {3, 1, 2}, {5, 2, 2}, {6, 3, 3}, {7, 3, 4}, {32, 16, 16}, {33, 16, 16},
	} {
		if got := hf.cropOffset(c.margin); got != c.hf {
			t.Errorf("HF crop offset for margin %d = %d, want %d", c.margin, got, c.hf)
		}
		// Python's round((m)/2.0) rounds halves to even.
		if got := tv.cropOffset(c.margin); got != c.torchvision {
			t.Errorf("torchvision crop offset for margin %d = %d, want %d", c.margin, got, c.torchvision)
		}
	}
}

func TestApplyShapesAndErrors(t *testing.T) {
	img := noise(50, 30)
	for _, p := range Presets() {
		for _, size := range []int{1, 7, 28, 224} {
			x, err := p.Apply(img, size)
			if err != nil {
				t.Fatalf("%s at %d: %v", p.Name, size, err)
			}
			if !slices.Equal(x.Shape, []int{3, size, size}) || len(x.Data) != 3*size*size {
				t.Errorf("%s at %d: shape %v", p.Name, size, x.Shape)
			}
		}
		if _, err := p.Apply(nil, 224); err == nil {
			t.Errorf("%s: nil image accepted", p.Name)
		}
		if _, err := p.Apply(img, 0); err == nil {
			t.Errorf("%s: image size 0 accepted", p.Name)
		}
		if _, err := p.Apply(image.NewNRGBA(image.Rect(0, 0, 0, 5)), 224); err == nil {
			t.Errorf("%s: empty image accepted", p.Name)
		}
	}
}

// A flat colour must stay exactly flat through every resize, whatever the
// bicubic filter's negative lobes do, and normalise to (v/255-mean)/std.
func TestFlatColourStaysFlat(t *testing.T) {
	img := image.NewNRGBA(image.Rect(0, 0, 61, 37))
	c := color.NRGBA{17, 128, 250, 255}
	for y := 0; y < 37; y++ {
		for x := 0; x < 61; x++ {
			img.SetNRGBA(x, y, c)
		}
	}
	for _, p := range Presets() {
		x, err := p.Apply(img, 40)
		if err != nil {
			t.Fatal(err)
		}
		rgb := [3]uint8{c.R, c.G, c.B}
		if p.Grayscale {
			l := luma(c.R, c.G, c.B)
			rgb = [3]uint8{l, l, l}
		}
		for ch := 0; ch < 3; ch++ {
			want := (float32(float64(rgb[ch])/255) - p.Mean[ch]) / p.Std[ch]
			for _, v := range x.Data[ch*1600 : (ch+1)*1600] {
				if v != want {
					t.Fatalf("%s channel %d: %v, want %v everywhere", p.Name, ch, v, want)
				}
			}
		}
	}
}

// Apply must honour a sub-image's bounds (the app crops with SubImage).
func TestSubImageMatchesCopy(t *testing.T) {
	full := noise(80, 60)
	r := image.Rect(13, 7, 70, 51)
	sub := full.SubImage(r)
	cp := image.NewNRGBA(image.Rect(0, 0, r.Dx(), r.Dy()))
	for y := 0; y < r.Dy(); y++ {
		copy(cp.Pix[y*cp.Stride:], full.Pix[full.PixOffset(r.Min.X, r.Min.Y+y):][:4*r.Dx()])
	}
	for _, p := range Presets() {
		a, _ := p.Apply(sub, 32)
		b, _ := p.Apply(cp, 32)
		if !slices.Equal(a.Data, b.Data) {
			t.Errorf("%s: sub-image and copy give different tensors", p.Name)
		}
	}
}

// Pillow's filters evaluated at known points (its bicubic uses a = -0.5).
func TestFilterWeights(t *testing.T) {
	for _, c := range []struct {
		f    Filter
		x    float64
		want float64
	}{
		{Bilinear, 0, 1}, {Bilinear, 0.25, 0.75}, {Bilinear, -0.5, 0.5}, {Bilinear, 1, 0},
		{Bicubic, 0, 1}, {Bicubic, 0.5, 0.5625}, {Bicubic, 1, 0}, {Bicubic, -1.5, -0.0625}, {Bicubic, 2, 0},
	} {
		if got := c.f.weight(c.x); math.Abs(got-c.want) > 1e-15 {
			t.Errorf("%v.weight(%v) = %v, want %v", c.f, c.x, got, c.want)
		}
	}
}

// A 12-megapixel photo, the common phone size, through each preset.
func BenchmarkApply12MP(b *testing.B) {
	img := noise(4000, 3000)
	for _, p := range Presets() {
		b.Run(p.Name, func(b *testing.B) {
			for b.Loop() {
				if _, err := p.Apply(img, 224); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// A preprocessor_config.json that no preset reproduces is refused with the
// reason; the DeiT and google processors are recognised (more in
// bundle.TestSuggestPreset).
func TestMatchHFProcessor(t *testing.T) {
	for _, c := range []struct{ json, want string }{
		{`{"size": 224, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}`, "google"},
		{`{"size": 256, "do_center_crop": true, "crop_size": 224, "resample": 3, "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]}`, "deit"},
		{`{"size": 224, "do_center_crop": true, "crop_size": 224, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}`, "google"},
	} {
		p, err := MatchHFProcessor([]byte(c.json), 224)
		if err != nil || p.Name != c.want {
			t.Errorf("%s: %s, %v; want %s", c.json, p.Name, err, c.want)
		}
	}
	for _, c := range []struct{ json, want string }{
		{`[]`, "not a JSON object"},
		{`{"size": {"height": 224, "width": 200}}`, "not square"},
		{`{"size": 224, "resample": 0}`, "resample 0"},
		{`{"size": 224, "do_rescale": false}`, "1/255"},
		{`{"image_mean": [0.5, 0.5, 0.5]}`, "no size"},
		{`{"size": 224, "image_mean": [0.5], "image_std": [0.5]}`, "3 values"},
		{`{"size": 224, "image_mean": [0.4, 0.4, 0.4], "image_std": [0.5, 0.5, 0.5]}`, "no preset"},
	} {
		if _, err := MatchHFProcessor([]byte(c.json), 224); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error saying %q", c.json, err, c.want)
		}
	}
}
