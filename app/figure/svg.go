// Package figure draws the app's figures as standalone SVG documents: every
// colour and font is an attribute (no CSS, no inline style), so a figure
// looks the same in the page, under a strict Content-Security-Policy, and
// when rasterised to PNG from a detached copy. Interactive parts carry
// data-* attributes the page reads on click and hover.
package figure

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"html"
	"image"
	"image/png"
	"strings"
	"sync"
)

// Font is the font stack of every figure.
const Font = "Inter, system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif"

// Colours shared by the figures and the page's CSS.
const (
	Ink      = "#0f172a"
	Muted    = "#64748b"
	Grid     = "#e2e8f0"
	Accent   = "#4f46e5" // [CLS], selections
	Teal     = "#0d9488" // image tokens
	Dropped  = "#94a3b8"
	Paper    = "#ffffff"
	Selected = "#f43f5e"
)

// doc accumulates one SVG document.
type doc struct {
	b    strings.Builder
	w, h float64
}

func newDoc(w, h float64, label string) *doc {
	d := &doc{w: w, h: h}
	fmt.Fprintf(&d.b, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %s %s" width="%s" height="%s" role="img" aria-label="%s" font-family="%s">`,
		num(w), num(h), num(w), num(h), esc(label), esc(Font))
	fmt.Fprintf(&d.b, `<rect width="%s" height="%s" fill="%s"/>`, num(w), num(h), Paper)
	return d
}

func (d *doc) raw(format string, args ...any) { fmt.Fprintf(&d.b, format, args...) }

// text writes a label; anchor is start, middle or end.
func (d *doc) text(x, y float64, size float64, fill, anchor, s string, extra ...string) {
	fmt.Fprintf(&d.b, `<text x="%s" y="%s" font-size="%s" fill="%s" text-anchor="%s"%s>%s</text>`,
		num(x), num(y), num(size), fill, anchor, attrs(extra), esc(s))
}

func (d *doc) line(x1, y1, x2, y2 float64, stroke string, width float64, extra ...string) {
	fmt.Fprintf(&d.b, `<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s" stroke-width="%s"%s/>`,
		num(x1), num(y1), num(x2), num(y2), stroke, num(width), attrs(extra))
}

// cursor rings the cell at x, y (w × h) that the keyboard cursor is on: a
// white ring under a dashed ink one, visible on any colour.
func (d *doc) cursor(x, y, w, h float64) {
	d.raw(`<rect x="%s" y="%s" width="%s" height="%s" fill="none" stroke="#ffffff" stroke-width="4" pointer-events="none"/>`,
		num(x+2), num(y+2), num(w-4), num(h-4))
	d.raw(`<rect x="%s" y="%s" width="%s" height="%s" fill="none" stroke="%s" stroke-width="2" stroke-dasharray="4 3" pointer-events="none"/>`,
		num(x+2), num(y+2), num(w-4), num(h-4), Ink)
}

func (d *doc) String() string { return d.b.String() + "</svg>" }

func attrs(extra []string) string {
	if len(extra) == 0 {
		return ""
	}
	return " " + strings.Join(extra, " ")
}

// num prints a coordinate compactly.
func num(v float64) string {
	s := fmt.Sprintf("%.2f", v)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	if s == "-0" {
		return "0"
	}
	return s
}

func esc(s string) string { return html.EscapeString(s) }

// title is an SVG tooltip child.
func title(s string) string { return "<title>" + esc(s) + "</title>" }

// pngEncoder reuses its compressor between images: a new one costs more
// than encoding a small figure (its tables are set up on every creation).
var pngEncoder = png.Encoder{CompressionLevel: png.BestSpeed, BufferPool: &pngBuffers{}}

// pngStored writes small images uncompressed (and unfiltered): for a few
// thousand pixels (a head's attention map, a heat-map's cells) deflate's
// set-up cost most of the encoding (18x the time at 14 × 14 natively) and
// saved a few kilobytes.
var pngStored = png.Encoder{CompressionLevel: png.NoCompression, BufferPool: &pngBuffers{}}

// storedPixels is the largest image pngStored writes: 16 kB of pixels.
const storedPixels = 64 * 64

type pngBuffers struct{ pool sync.Pool }

func (p *pngBuffers) Get() *png.EncoderBuffer {
	b, _ := p.pool.Get().(*png.EncoderBuffer)
	return b
}

func (p *pngBuffers) Put(b *png.EncoderBuffer) { p.pool.Put(b) }

// PNGDataURI encodes img as a data: URI for <img> and SVG <image>.
func PNGDataURI(img image.Image) string {
	enc := &pngEncoder
	if r := img.Bounds(); r.Dx()*r.Dy() <= storedPixels {
		enc = &pngStored
	}
	return pngURI(enc, img)
}

// StoredPNGDataURI is PNGDataURI uncompressed whatever the size: for a
// picture encoded on the page's main thread, where deflating a 224 × 224
// preview took about 25 ms of a render step (profiled in Chromium) and a
// data URI four times the size costs the browser far less.
func StoredPNGDataURI(img image.Image) string { return pngURI(&pngStored, img) }

func pngURI(enc *png.Encoder, img image.Image) string {
	var b bytes.Buffer
	if err := enc.Encode(&b, img); err != nil {
		// Only fails for zero-sized images, which callers never pass.
		return ""
	}
	return "data:image/png;base64," + base64.StdEncoding.EncodeToString(b.Bytes())
}
