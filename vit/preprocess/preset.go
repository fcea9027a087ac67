package preprocess

import (
	"errors"
	"fmt"
	"image"
	"strings"

	"vitlens/vit"
)

// ResizeMode says which shape the first resize produces.
type ResizeMode int

const (
	// ResizeSquare resizes straight to R×R, ignoring the aspect ratio
	// (HF ViTImageProcessor / DeiT processor, torchvision Resize((R, R))).
	ResizeSquare ResizeMode = iota
	// ResizeShorterSide scales the shorter side to R and the longer side to
	// int(R*long/short), as torchvision's Resize(R) with an int size does.
	ResizeShorterSide
)

// CropMode says how a center crop places its window when the margin is odd.
type CropMode int

const (
	NoCrop CropMode = iota
	// CropFloor puts the window at (size-crop)//2, as HF's center_crop does.
	CropFloor
	// CropRoundHalfEven puts it at int(round((size-crop)/2.0)), as
	// torchvision's CenterCrop does; Python rounds halves to even, so a
	// margin of 5 gives offset 2 but a margin of 7 gives 4.
	CropRoundHalfEven
)

// Preset is one original preprocessing pipeline. Apply runs: convert to RGB
// (or to L for Grayscale presets), resize to R, center-crop to the image
// size S, scale to [0, 1], normalise with Mean/Std. R is
// ResizeNum*S/ResizeDen, rounded to nearest when ResizeRoundNearest is set
// (HF DeiT: 256/224) or down otherwise (timm's floor(S/crop_pct)).
type Preset struct {
	Name   string
	Origin string // which original pipeline this reproduces

	Resize             ResizeMode
	ResizeNum          int
	ResizeDen          int
	ResizeRoundNearest bool
	Filter             Filter
	Crop               CropMode

	Mean, Std [3]float32
	// Grayscale converts to PIL "L" and copies the one channel to all three,
	// for models trained on grayscale data.
	Grayscale bool
}

var imagenetMean = [3]float32{0.485, 0.456, 0.406}
var imagenetStd = [3]float32{0.229, 0.224, 0.225}
var half = [3]float32{0.5, 0.5, 0.5}

var presets = []Preset{
	{
		Name:   "google",
		Origin: "HF ViTImageProcessor of google/vit-*-224-in21k (vit_b_32, vit_b_16, vit_large_16, vit_gap_16)",
		Resize: ResizeSquare, ResizeNum: 1, ResizeDen: 1, Filter: Bilinear, Crop: NoCrop,
		Mean: half, Std: half,
	},
	{
		Name:   "deit",
		Origin: "HF DeiT processor of facebook/deit-base-distilled-patch16-224 (deit_ensemble_16)",
		Resize: ResizeSquare, ResizeNum: 256, ResizeDen: 224, ResizeRoundNearest: true,
		Filter: Bicubic, Crop: CropFloor,
		Mean: imagenetMean, Std: imagenetStd,
	},
	{
		Name:   "miil",
		Origin: "timm eval transform of vit_base_patch16_224_miil (crop_pct 0.875, bilinear; vit_miil_16)",
		Resize: ResizeShorterSide, ResizeNum: 8, ResizeDen: 7, // floor(S / 0.875)
		Filter: Bilinear, Crop: CropRoundHalfEven,
		Mean: [3]float32{0, 0, 0}, Std: [3]float32{1, 1, 1},
	},
	{
		Name:   "cifar",
		Origin: "torchvision Resize((224, 224)), CenterCrop(224), ToTensor, Normalize(0.5, 0.5) (vit_cifar_16)",
		Resize: ResizeSquare, ResizeNum: 1, ResizeDen: 1, Filter: Bilinear, Crop: CropRoundHalfEven,
		Mean: half, Std: half,
	},
	{
		Name:   "fmnist",
		Origin: "vitlens's Fashion-MNIST demo model: PIL convert('L'), ToTensor, Normalize(0.2860, 0.3530), copied to 3 channels",
		Resize: ResizeSquare, ResizeNum: 1, ResizeDen: 1, Filter: Bilinear, Crop: NoCrop,
		Mean: [3]float32{0.2860, 0.2860, 0.2860}, Std: [3]float32{0.3530, 0.3530, 0.3530},
		Grayscale: true,
	},
}

// Presets returns every known preset, in a stable order.
func Presets() []Preset { return append([]Preset(nil), presets...) }

// PresetByName finds a preset by its Name.
func PresetByName(name string) (Preset, error) {
	var names []string
	for _, p := range presets {
		if p.Name == name {
			return p, nil
		}
		names = append(names, p.Name)
	}
	return Preset{}, fmt.Errorf("unknown preprocessing preset %q (known: %s)", name, strings.Join(names, ", "))
}

// resizeTarget is R for image size S.
func (p Preset) resizeTarget(s int) int {
	num, den := p.ResizeNum, p.ResizeDen
	if num <= 0 || den <= 0 {
		return s
	}
	if p.ResizeRoundNearest {
		return (2*num*s + den) / (2 * den)
	}
	return num * s / den
}

// Describe says in one line what Apply does, for logs and the UI.
func (p Preset) Describe() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: ", p.Name)
	if p.Grayscale {
		b.WriteString("grayscale (PIL convert L, copied to 3 channels), ")
	}
	r := "S"
	switch {
	case p.ResizeNum == p.ResizeDen:
	case p.ResizeRoundNearest:
		r = fmt.Sprintf("round(S*%d/%d)", p.ResizeNum, p.ResizeDen)
	default:
		r = fmt.Sprintf("floor(S*%d/%d)", p.ResizeNum, p.ResizeDen)
	}
	if p.Resize == ResizeShorterSide {
		fmt.Fprintf(&b, "resize shorter side to %s", r)
	} else {
		fmt.Fprintf(&b, "resize to %s x %s (aspect ratio not kept)", r, r)
	}
	fmt.Fprintf(&b, " with Pillow %s", p.Filter)
	if p.Crop != NoCrop && (r != "S" || p.Resize == ResizeShorterSide) {
		b.WriteString(", center-crop S x S")
	}
	fmt.Fprintf(&b, ", /255, mean %v std %v; S = the model's image size; %s",
		p.Mean, p.Std, p.Origin)
	return b.String()
}

// Apply turns an image into the (3, imageSize, imageSize) input tensor. Its
// working copies count against InFlightPixels while it runs.
func (p Preset) Apply(img image.Image, imageSize int) (*vit.Tensor, error) {
	if img == nil {
		return nil, errors.New("preprocess: nil image")
	}
	defer inFlight.hold(pixels(img))()
	return p.apply(img, imageSize)
}

// apply is Apply for a caller that already holds the image's pixels.
func (p Preset) apply(img image.Image, imageSize int) (*vit.Tensor, error) {
	if img == nil {
		return nil, errors.New("preprocess: nil image")
	}
	if imageSize <= 0 {
		return nil, fmt.Errorf("preprocess %s: image size %d must be positive", p.Name, imageSize)
	}
	b := img.Bounds()
	if b.Dx() <= 0 || b.Dy() <= 0 {
		return nil, fmt.Errorf("preprocess %s: image has zero size (%dx%d)", p.Name, b.Dx(), b.Dy())
	}
	var r *raster
	if p.Grayscale {
		r = toGray(img)
	} else {
		r = toRGB(img)
	}
	r = p.resize(r, imageSize)
	r, err := p.centerCrop(r, imageSize)
	if err != nil {
		return nil, fmt.Errorf("preprocess %s: %v", p.Name, err)
	}
	return p.normalize(r), nil
}

func (p Preset) resize(r *raster, s int) *raster {
	w, h := p.resizedSize(r.w, r.h, s)
	return resample(r, w, h, p.Filter)
}

// resizedSize is the size the first resize gives a w×h image.
func (p Preset) resizedSize(w, h, s int) (rw, rh int) {
	target := p.resizeTarget(s)
	rw, rh = target, target
	if p.Resize == ResizeShorterSide {
		// torchvision: new_long = int(new_short * long / short), a float
		// division truncated, which float64 reproduces exactly.
		if w <= h {
			rh = int(float64(target*h) / float64(w))
		} else {
			rw = int(float64(target*w) / float64(h))
		}
	}
	return rw, rh
}

// Window is where Apply takes the model input from in a w×h image: the
// image resized to W×H, then the S×S square at (Left, Top) of that.
type Window struct {
	W, H, Left, Top, S int
}

// Window returns where Apply takes the S×S input from in a w×h image, so
// that what is drawn on the image (segmentation masks) can follow it.
func (p Preset) Window(w, h, s int) Window {
	rw, rh := p.resizedSize(w, h, s)
	win := Window{W: rw, H: rh, S: s}
	if p.Crop != NoCrop && (rw != s || rh != s) {
		win.Left, win.Top = p.cropOffset(rw-s), p.cropOffset(rh-s)
	}
	return win
}

// Crops reports whether the input is less than the whole image, i.e. the
// image is not simply resized to S×S.
func (w Window) Crops() bool { return w.W != w.S || w.H != w.S }

func (p Preset) centerCrop(r *raster, s int) (*raster, error) {
	if r.w == s && r.h == s {
		return r, nil
	}
	if p.Crop == NoCrop {
		return nil, fmt.Errorf("resized to %dx%d instead of %dx%d", r.w, r.h, s, s)
	}
	if r.w < s || r.h < s {
		// Cannot happen with the presets above (R >= S); the originals would
		// zero-pad here, which no model input should rely on.
		return nil, fmt.Errorf("resized image %dx%d is smaller than the %dx%d crop", r.w, r.h, s, s)
	}
	left, top := p.cropOffset(r.w-s), p.cropOffset(r.h-s)
	out := newRaster(s, s, r.c)
	for y := 0; y < s; y++ {
		src := r.pix[((top+y)*r.w+left)*r.c:]
		copy(out.pix[y*s*r.c:(y+1)*s*r.c], src[:s*r.c])
	}
	return out, nil
}

func (p Preset) cropOffset(margin int) int {
	if p.Crop == CropRoundHalfEven && margin%2 == 1 {
		// margin/2 is a half: round to the even neighbour.
		lo := margin / 2
		if lo%2 == 0 {
			return lo
		}
		return lo + 1
	}
	return margin / 2
}

// normalize mirrors ToTensor + Normalize and HF's rescale + normalize: the
// 8-bit value over 255, then (x - mean) / std, all in float32.
func (p Preset) normalize(r *raster) *vit.Tensor {
	n := r.w * r.h
	t := vit.NewTensor(3, r.h, r.w)
	for ch := 0; ch < 3; ch++ {
		mean, std := p.Mean[ch], p.Std[ch]
		src := ch
		if r.c == 1 {
			src = 0
		}
		out := t.Data[ch*n : (ch+1)*n]
		for i := range out {
			v := float32(float64(r.pix[i*r.c+src]) / 255)
			out[i] = (v - mean) / std
		}
	}
	return t
}
