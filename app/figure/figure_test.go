package figure

import (
	"bytes"
	"encoding/base64"
	"encoding/xml"
	"image"
	"image/color"
	"image/png"
	"io"
	"math"
	"strings"
	"testing"
)

// parse checks that s is well-formed XML and counts elements by name, and
// those carrying a data-token attribute.
func parse(t *testing.T, s string) (count map[string]int, tokens int) {
	t.Helper()
	count = map[string]int{}
	dec := xml.NewDecoder(strings.NewReader(s))
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return count, tokens
		}
		if err != nil {
			t.Fatalf("not well-formed: %v\n%s", err, s[:min(len(s), 400)])
		}
		if se, ok := tok.(xml.StartElement); ok {
			count[se.Name.Local]++
			for _, a := range se.Attr {
				if a.Name.Local == "data-token" {
					tokens++
				}
			}
		}
	}
}

func TestFiguresAreWellFormedAndInteractive(t *testing.T) {
	img := PNGDataURI(image.NewNRGBA(image.Rect(0, 0, 8, 8)))
	if !strings.HasPrefix(img, "data:image/png;base64,") {
		t.Fatal(img[:20])
	}
	curve := Curve(`Identifiability of "coat" & co`, []Series{
		{Name: "[CLS]", Values: []float64{0.5, 0.7, 1}, Colour: Accent},
		{Name: "image tokens", Values: []float64{0.4, math.NaN(), 0.9}, Colour: Teal, Dashed: true},
	})
	if c, _ := parse(t, curve); c["circle"] != 5 || c["path"] != 2 {
		t.Fatalf("curve: %v", c)
	}
	hm := Heatmap{Title: "ranks", Ranks: [][]int32{{0, 3, -1}, {1, 0, -1}}, Labels: []string{"[CLS]", "patch (0, 0)", "patch (0, 1)"},
		Classes: 10, SelBlock: 1, SelToken: 2}
	svg := hm.SVG()
	if c, _ := parse(t, svg); c["image"] != 1 || !strings.Contains(svg, `data-rows="2" data-cols="3"`) {
		t.Fatalf("heat-map: %v, want one image of 2 × 3 cells: %s", c, svg)
	}
	// Its cells, a pixel each, are the colours of their ranks.
	cells := decodeHref(t, svg, `class="vl-cells"`)
	if b := cells.Bounds(); b.Dx() != 3 || b.Dy() != 2 {
		t.Fatalf("heat-map cells %v: want 3 × 2", b)
	}
	for b, row := range hm.Ranks {
		for tok, r := range row {
			want := Dropped
			if r >= 0 {
				want = RankColour(int(r), hm.Classes)
			}
			if got := Hex(color.NRGBAModel.Convert(cells.At(tok, b)).(color.NRGBA)); got != want {
				t.Errorf("heat-map cell (block %d, token %d) is %s: want %s", b, tok, got, want)
			}
		}
	}
	// Prefix tokens other than [CLS] are labelled as their kind.
	reg := Heatmap{Title: "ranks", Ranks: [][]int32{{0, 1, 2, 3}}, Labels: []string{"[CLS]", "register 1", "register 2", "patch (0, 0)"}, Classes: 10}
	if svg := reg.SVG(); !strings.Contains(svg, ">R2<") || !strings.Contains(svg, "token ([CLS], registers, then patches row by row)") {
		t.Errorf("registers are not labelled as such: %s", svg)
	}
	if got := prefixCaption([]string{"[CLS]", "distillation token", "patch (0, 0)"}); got != "[CLS], distillation token, " {
		t.Errorf("distilled caption %q", got)
	}
	ov := Overlay{Title: "overlay", Image: img, Grid: 2, Colours: []string{RankColour(0, 10), "", "#000000", "#ffffff"},
		Titles: []string{"a", "b", "c", "<d>"}, FirstToken: 1, Selected: 3, Cursor: -1}
	if c, n := parse(t, ov.SVG()); n != 4 || c["image"] != 1 || c["linearGradient"] != 0 {
		t.Fatalf("overlay: %v, %d", c, n)
	}
	// With a colour legend and the keyboard cursor (two rings) on a patch.
	ov.Classes, ov.LegendID, ov.Cursor = 10, "scale-a", 2
	if c, _ := parse(t, ov.SVG()); c["linearGradient"] != 1 || c["rect"] != 1+4+1+2+1 {
		t.Fatalf("overlay with legend and cursor: %v", c)
	}
	pics := Pictures{Title: "maps", Images: []string{img, img, img}, Captions: []string{"input", "ours", "Chefer"}, Size: 64}
	if c, _ := parse(t, pics.SVG()); c["image"] != 3 || c["text"] != 4 {
		t.Fatalf("pictures: %v", c)
	}
	nan := float32(math.NaN())
	am := AttentionMaps{Title: "attention", Grid: 2, Query: 0,
		Weights: [][][]float32{{{0.1, 0.2, nan, 0.3}, {0.5, 0, nan, 0}}},
		CLS:     [][]float32{{0.4, 0.5}}}
	// One picture of the three maps (two heads and their mean), each shown
	// through its own viewBox.
	s := am.SVG()
	if c, _ := parse(t, s); c["image"] != 1 || c["use"] != 3 || c["svg"] != 4 {
		t.Fatalf("attention: %v", c)
	}
	for _, want := range []string{`viewBox="0 0 2 2"`, `viewBox="2 0 2 2"`, `viewBox="4 0 2 2"`, `width="6" height="2"`} {
		if !strings.Contains(s, want) {
			t.Errorf("attention: no %s in\n%s", want, s)
		}
	}
	// The picture's tiles are the maps, each scaled to its maximum: head
	// 2's 0.5 is full colour, the mean's NaN patch stays NaN's colour.
	const uri = `href="data:image/png;base64,`
	at := strings.Index(s, uri)
	if at < 0 {
		t.Fatal("attention: no PNG")
	}
	raw, err := base64.StdEncoding.DecodeString(s[at+len(uri) : at+len(uri)+strings.IndexByte(s[at+len(uri):], '"')])
	if err != nil {
		t.Fatal(err)
	}
	sheet, err := png.Decode(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	for _, px := range []struct {
		x, y int
		want color.NRGBA
	}{{2, 0, Viridis(1)}, {3, 0, Viridis(0)}, {1, 1, Viridis(1)}, {4, 1, Viridis(math.NaN())}, {0, 0, Viridis(1.0 / 3)}} {
		if got := color.NRGBAModel.Convert(sheet.At(px.x, px.y)).(color.NRGBA); got != px.want {
			t.Errorf("attention picture at (%d, %d): %v, want %v", px.x, px.y, got, px.want)
		}
	}
	if got, want := am.Tip(0, 2), "block 1, mean of heads: max weight on a patch 0.300, on [CLS] 0.450"; got != want {
		t.Errorf("attention tip %q, want %q", got, want)
	}
}

func TestRankColours(t *testing.T) {
	if RankScale(0, 1000) != 1 || RankScale(999, 1000) > 1e-3 {
		t.Fatal("rank scale ends")
	}
	if RankScale(9, 1000) <= RankScale(10, 1000) {
		t.Fatal("rank scale not decreasing")
	}
	if Hex(Viridis(0)) != "#440154" || Hex(Viridis(1)) != "#fde725" {
		t.Fatalf("viridis ends %s %s", Hex(Viridis(0)), Hex(Viridis(1)))
	}
}

// A signed grid is well-formed, one cell per value, each value in its
// data-value, the largest |value| full colour and zero white.
func TestSignedGrid(t *testing.T) {
	g := SignedGrid{Title: "t", Values: [][]float64{{1, -2, 0}, {0.5, 2, -1}}, RowName: "block", ColName: "head", Unit: "of the logit"}
	s := g.SVG()
	count, _ := parse(t, s)
	if count["rect"] != 1+6 {
		t.Fatalf("%d rects", count["rect"])
	}
	for _, want := range []string{`data-row="0" data-col="1" data-value="-2"`, `fill="#0000ff" data-row="0" data-col="1"`,
		`fill="#ff0000" data-row="1" data-col="1"`, `fill="#ffffff" data-row="0" data-col="2"`, "block 1 · head 2: -1.0000 of the logit"} {
		if !strings.Contains(s, want) {
			t.Errorf("no %s in\n%s", want, s)
		}
	}
	// Named columns name the cell in its tooltip; a legend replaces the default.
	g.ColLabels, g.ColName, g.Legend = []string{"[CLS]", "patch (0, 0)", "patch (0, 1)"}, "token", "red: towards the clean image"
	s = g.SVG()
	g.Cursor = &[2]int{1, 2}
	s = g.SVG()
	if count, _ := parse(t, s); count["rect"] != 1+6+2 || g.Tip(1, 2) != "block 1 · patch (0, 1): -1.0000 of the logit" || g.Tip(2, 0) != "" {
		t.Errorf("cursor: %d rects, tip %q", count["rect"], g.Tip(1, 2))
	}
	for _, want := range []string{"block 0 · [CLS]: +1.0000 of the logit", "block 1 · patch (0, 1): -1.0000", "token (red: towards the clean image)"} {
		if !strings.Contains(s, want) {
			t.Errorf("no %s in\n%s", want, s)
		}
	}
}

// decodeHref decodes the PNG data URI of the element of svg that has attr.
func decodeHref(t *testing.T, svg, attr string) image.Image {
	t.Helper()
	_, el, ok := strings.Cut(svg, attr)
	if !ok {
		t.Fatalf("no element with %s", attr)
	}
	_, uri, _ := strings.Cut(el, `href="data:image/png;base64,`)
	uri, _, _ = strings.Cut(uri, `"`)
	data, err := base64.StdEncoding.DecodeString(uri)
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// Small images are written uncompressed, larger ones deflated (unless
// asked for uncompressed): all decode to the pixels given.
func TestPNGDataURIRoundTrips(t *testing.T) {
	for _, n := range []int{14, 64, 65, 120, -120} {
		uri := PNGDataURI
		if n < 0 {
			n, uri = -n, StoredPNGDataURI
		}
		img := image.NewNRGBA(image.Rect(0, 0, n, n-3))
		for i := range img.Pix {
			img.Pix[i] = byte(i*7 + i/5)
		}
		got := decodeHref(t, `<image class="x" href="`+uri(img)+`"/>`, `class="x"`)
		if got.Bounds() != img.Bounds() {
			t.Fatalf("%d: bounds %v", n, got.Bounds())
		}
		for y := range n - 3 {
			for x := range n {
				if c := color.NRGBAModel.Convert(got.At(x, y)); c != img.NRGBAAt(x, y) {
					t.Fatalf("%d: pixel (%d, %d) is %v: want %v", n, x, y, c, img.NRGBAAt(x, y))
				}
			}
		}
	}
}
