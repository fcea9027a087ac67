package preprocess

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/color"
	"image/gif"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
)

// pngHeader is a PNG signature and IHDR chunk claiming w×h 8-bit RGB pixels,
// with no image data: enough for DecodeConfig, useless for Decode.
func pngHeader(w, h uint32) []byte {
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], w)
	binary.BigEndian.PutUint32(ihdr[4:], h)
	ihdr[8], ihdr[9] = 8, 2 // bit depth 8, colour type RGB
	chunk := append([]byte("IHDR"), ihdr...)
	binary.Write(&b, binary.BigEndian, uint32(len(ihdr)))
	b.Write(chunk)
	binary.Write(&b, binary.BigEndian, crc32.ChecksumIEEE(chunk))
	return b.Bytes()
}

// bmpHeader is a 24-bit BMP header claiming w×h pixels, with no pixel data.
func bmpHeader(w, h int32) []byte {
	var b bytes.Buffer
	b.WriteString("BM")
	for _, v := range []any{uint32(54), uint32(0), uint32(54), uint32(40), w, h, uint16(1), uint16(24),
		uint32(0), uint32(0), int32(2835), int32(2835), uint32(0), uint32(0)} {
		binary.Write(&b, binary.LittleEndian, v)
	}
	return b.Bytes()
}

func encodePNG(t *testing.T, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func noise(w, h int) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for i := range img.Pix {
		img.Pix[i] = uint8(i*7919 + i*i*31)
	}
	return img
}

func TestDecodeRejectsBadInput(t *testing.T) {
	valid := encodePNG(t, noise(64, 64))
	for _, c := range []struct {
		name  string
		data  []byte
		limit int
		want  string
	}{
		{"giant.png", pngHeader(100000, 100000), MaxPixels, "giant.png: 100000x100000 pixels exceeds the limit"},
		{"just-over.png", pngHeader(16385, 4097), MaxPixels, "just-over.png: 16385x4097 pixels exceeds"},
		// At the limit the header passes and the missing pixel data is reported.
		{"at-limit.png", pngHeader(8192, 8192), MaxPixels, "at-limit.png: corrupt or truncated png image"},
		{"small-limit.png", valid, 1000, "small-limit.png: 64x64 pixels exceeds the limit of 1000"},
		{"notes.txt", []byte("hello, this is not an image at all"), MaxPixels, "notes.txt: not an image"},
		{"empty.jpg", nil, MaxPixels, "empty.jpg: not an image"},
		{"cut.png", valid[:len(valid)/2], MaxPixels, "cut.png: corrupt or truncated png image"},
		{"header-only.png", valid[:20], MaxPixels, "header-only.png: truncated image header"},
		{"zero.png", pngHeader(0, 0), MaxPixels, "zero.png: not a valid image"},
		{"zero.bmp", bmpHeader(0, 0), MaxPixels, "zero.bmp: bmp image has zero size"},
	} {
		t.Run(c.name, func(t *testing.T) {
			img, err := DecodeLimit(bytes.NewReader(c.data), c.name, c.limit)
			if err == nil {
				t.Fatalf("decoded a %v image, want error containing %q", img.Bounds(), c.want)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q, want it to contain %q", err, c.want)
			}
		})
	}
}

func TestDecodeFromStreamMatchesFile(t *testing.T) {
	src := noise(33, 21)
	data := encodePNG(t, src)
	path := filepath.Join(t.TempDir(), "noise.png")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	fromFile, err := DecodeFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// A reader that cannot seek or peek must still work: the header bytes
	// read for the size check are replayed to the decoder.
	fromStream, err := Decode(iotest.OneByteReader(bytes.NewReader(data)), "noise.png")
	if err != nil {
		t.Fatal(err)
	}
	for _, img := range []image.Image{fromFile, fromStream} {
		if !bytes.Equal(img.(*image.NRGBA).Pix, src.Pix) {
			t.Errorf("decoded pixels differ from the encoded ones")
		}
	}
	if _, err := DecodeFile(filepath.Join(t.TempDir(), "missing.png")); err == nil || !strings.Contains(err.Error(), "missing.png") {
		t.Errorf("missing file: error %v should name the file", err)
	}
}

func TestToRGBDropsAlphaWithoutCompositing(t *testing.T) {
	img := image.NewNRGBA(image.Rect(0, 0, 2, 1))
	img.SetNRGBA(0, 0, color.NRGBA{200, 100, 50, 0})
	img.SetNRGBA(1, 0, color.NRGBA{10, 20, 30, 128})
	got := toRGB(img).pix
	want := []uint8{200, 100, 50, 10, 20, 30}
	if !bytes.Equal(got, want) {
		t.Errorf("toRGB = %v, want %v (PIL convert('RGB') keeps the colour under alpha)", got, want)
	}
}

func TestLumaMatchesPIL(t *testing.T) {
	// Expected values printed by PIL 9.4: Image.new('RGB', (1, 1), c).convert('L').
	for _, c := range []struct{ r, g, b, want uint8 }{
		{255, 0, 0, 76}, {0, 255, 0, 150}, {0, 0, 255, 29}, {255, 255, 255, 255},
		{1, 1, 1, 1}, {128, 64, 32, 79}, {10, 200, 90, 131},
	} {
		if got := luma(c.r, c.g, c.b); got != c.want {
			t.Errorf("luma(%d, %d, %d) = %d, want %d", c.r, c.g, c.b, got, c.want)
		}
	}
}

// A GIF whose first frame covers only part of the logical screen decodes to
// the whole screen, filled like PIL 9.4 does (expected rows printed by PIL's
// np.array(Image.open(f).convert('RGB'))[:, :, 0]).
func TestGIFFrameOnFullCanvas(t *testing.T) {
	for _, c := range []struct {
		name  string
		third color.Color // palette entry 2, used by the frame
		want  [6][8]uint8
	}{
		{"transparent.gif", color.RGBA{}, [6][8]uint8{ // fill: transparent index 2 (black)
			{0, 0, 0, 0, 0, 0, 0, 0}, {0, 0, 200, 0, 200, 0, 0, 0}, {0, 0, 200, 0, 200, 0, 0, 0},
			{0, 0, 200, 0, 200, 0, 0, 0}, {0, 0, 0, 0, 0, 0, 0, 0}, {0, 0, 0, 0, 0, 0, 0, 0}}},
		{"opaque.gif", color.RGBA{7, 7, 7, 255}, [6][8]uint8{ // fill: index 0 (10, 20, 30)
			{10, 10, 10, 10, 10, 10, 10, 10}, {10, 10, 200, 7, 200, 7, 10, 10}, {10, 10, 200, 7, 200, 7, 10, 10},
			{10, 10, 200, 7, 200, 7, 10, 10}, {10, 10, 10, 10, 10, 10, 10, 10}, {10, 10, 10, 10, 10, 10, 10, 10}}},
	} {
		pal := color.Palette{color.RGBA{10, 20, 30, 255}, color.RGBA{200, 100, 50, 255}, c.third, color.RGBA{90, 90, 250, 255}}
		frame := image.NewPaletted(image.Rect(2, 1, 6, 4), pal)
		for i := range frame.Pix {
			frame.Pix[i] = uint8(i%2 + 1)
		}
		var buf bytes.Buffer
		err := gif.EncodeAll(&buf, &gif.GIF{Image: []*image.Paletted{frame}, Delay: []int{0},
			Config: image.Config{ColorModel: pal, Width: 8, Height: 6}, BackgroundIndex: 3})
		if err != nil {
			t.Fatal(err)
		}
		img, err := Decode(&buf, c.name)
		if err != nil {
			t.Fatal(err)
		}
		rgb := toRGB(img)
		if rgb.w != 8 || rgb.h != 6 {
			t.Fatalf("%s: decoded %dx%d, want the 8x6 logical screen", c.name, rgb.w, rgb.h)
		}
		for y := 0; y < 6; y++ {
			for x := 0; x < 8; x++ {
				if got := rgb.pix[3*(y*8+x)]; got != c.want[y][x] {
					t.Errorf("%s: red at (%d, %d) = %d, want %d", c.name, x, y, got, c.want[y][x])
				}
			}
		}
	}
}
