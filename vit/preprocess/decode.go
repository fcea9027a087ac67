// Package preprocess turns image files into the model's input tensor exactly
// as the original Python pipelines do (Pillow resampling, HF image processors
// and torchvision transforms), so that logits computed here match theirs.
package preprocess

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"image"
	"io"
	"os"
	"path/filepath"

	// Registered for image.Decode / image.DecodeConfig.
	_ "image/gif"
	_ "image/jpeg"
	_ "image/png"

	_ "golang.org/x/image/bmp"
	_ "golang.org/x/image/webp"
)

// MaxPixels is the default limit on width*height checked before decoding.
//
// 64 Mi pixels covers every camera and phone photo in common use (a 50 MP
// sensor is 8192x6144 = 48 Mi) while bounding the decoded buffer to 256 MiB
// of RGBA: a tiny file whose header claims 100000x100000 pixels must be
// refused before the decoder allocates tens of gigabytes (decompression bomb),
// which matters most in the browser where memory is scarce.
const MaxPixels = 64 << 20

// Decode reads an image (PNG, JPEG, GIF, BMP or WebP) from r, refusing it
// before decoding if it has more than MaxPixels pixels. name is only used in
// error messages, so that a user uploading many files knows which one failed.
//
// Where Go's decoders disagree with what PIL's Image.open yields, the result
// is brought in line: lossy WebP gets libwebp's colours and a GIF's first
// frame is placed on its full logical screen. JPEGs stay *image.YCbCr;
// Preset.Apply converts them with libjpeg's chroma upsampling and rounding.
func Decode(r io.Reader, name string) (image.Image, error) {
	return DecodeLimit(r, name, MaxPixels)
}

// DecodeFile opens and decodes the image at path with the default limit.
func DecodeFile(path string) (image.Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err // *PathError already names the file
	}
	defer f.Close()
	return DecodeLimit(f, filepath.Base(path), MaxPixels)
}

// DecodeLimit is Decode with an explicit pixel limit; maxPixels <= 0 means no
// limit.
func DecodeLimit(r io.Reader, name string, maxPixels int) (image.Image, error) {
	var out image.Image
	err := decodeWith(r, name, maxPixels, func(img image.Image) error {
		out = img
		return nil
	})
	return out, err
}

// decodeWith checks the header against maxPixels, takes the image's pixels
// from the in-flight budget before the decoder allocates them, and gives
// them back once use returns.
func decodeWith(r io.Reader, name string, maxPixels int, use func(image.Image) error) error {
	// The header is read through a recording reader so the same bytes can be
	// replayed to the full decoder without requiring r to be seekable.
	br := bufio.NewReader(r)
	var head bytes.Buffer
	cfg, format, err := image.DecodeConfig(io.TeeReader(br, &head))
	if err != nil {
		return decodeError(name, err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return fmt.Errorf("%s: %s image has zero size (%dx%d pixels)", name, format, cfg.Width, cfg.Height)
	}
	// Divide instead of multiplying so huge headers cannot overflow int.
	if maxPixels > 0 && (cfg.Width > maxPixels/cfg.Height) {
		return fmt.Errorf("%s: %dx%d pixels exceeds the limit of %d pixels (%d megapixels)",
			name, cfg.Width, cfg.Height, maxPixels, maxPixels>>20)
	}
	release := inFlight.hold(min(cfg.Width, InFlightPixels) * min(cfg.Height, InFlightPixels))
	defer release()
	img, format, err := image.Decode(io.MultiReader(&head, br))
	if err != nil {
		return fmt.Errorf("%s: corrupt or truncated %s image (%v)", name, format, err)
	}
	b := img.Bounds()
	if b.Dx() <= 0 || b.Dy() <= 0 {
		return fmt.Errorf("%s: %s image has zero size", name, format)
	}
	switch format {
	case "webp":
		img = fixWebPColors(img)
	case "gif":
		img = gifCanvas(img, cfg.Width, cfg.Height)
	}
	return use(img)
}

// gifCanvas places a GIF's first frame on its full logical screen, as PIL
// does: Go returns just the frame's rectangle, which may be smaller. PIL
// fills the rest with the transparent index if there is one, else index 0.
func gifCanvas(img image.Image, w, h int) image.Image {
	m, ok := img.(*image.Paletted)
	full := image.Rect(0, 0, w, h)
	if !ok || m.Rect == full || !m.Rect.In(full) {
		return img
	}
	canvas := image.NewPaletted(full, m.Palette)
	fill := uint8(0)
	for i, c := range m.Palette {
		// Go's decoder marks the transparent index as the zero colour.
		if _, _, _, a := c.RGBA(); a == 0 {
			fill = uint8(i)
			break
		}
	}
	for i := range canvas.Pix {
		canvas.Pix[i] = fill
	}
	for y := m.Rect.Min.Y; y < m.Rect.Max.Y; y++ {
		copy(canvas.Pix[canvas.PixOffset(m.Rect.Min.X, y):], m.Pix[m.PixOffset(m.Rect.Min.X, y):][:m.Rect.Dx()])
	}
	return canvas
}

// fixWebPColors replaces x/image/webp's YCbCr output of lossy WebP, whose
// colours it gets wrong, with libwebp's RGB (see webpcolor.go). Lossless
// WebP decodes to NRGBA and needs nothing.
func fixWebPColors(img image.Image) image.Image {
	switch m := img.(type) {
	case *image.YCbCr:
		if m.SubsampleRatio == image.YCbCrSubsampleRatio420 {
			return webpToNRGBA(m, nil, 0)
		}
	case *image.NYCbCrA:
		if m.SubsampleRatio == image.YCbCrSubsampleRatio420 {
			return webpToNRGBA(&m.YCbCr, m.A[m.AOffset(m.Rect.Min.X, m.Rect.Min.Y):], m.AStride)
		}
	}
	return img
}

func decodeError(name string, err error) error {
	if errors.Is(err, image.ErrFormat) {
		return fmt.Errorf("%s: not an image (supported formats: PNG, JPEG, GIF, BMP, WebP)", name)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%s: truncated image header (%v)", name, err)
	}
	return fmt.Errorf("%s: not a valid image (%v)", name, err)
}
