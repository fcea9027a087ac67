package figure

// Pictures is a row of captioned square pictures (the explanation maps
// beside their input), drawn as one figure so it exports like the others.
type Pictures struct {
	Title string
	// Images are data: URIs, each drawn Size × Size.
	Images, Captions []string
	Size             float64
}

// SVG draws the row.
func (p Pictures) SVG() string {
	const top, gap, below = 26.0, 16.0, 22.0
	n := float64(len(p.Images))
	w := n*p.Size + max(n-1, 0)*gap
	d := newDoc(max(w, 200), top+p.Size+below, p.Title)
	d.text(0, 16, 12, Ink, "start", p.Title, `font-weight="600"`)
	for i, src := range p.Images {
		x := float64(i) * (p.Size + gap)
		d.raw(`<image x="%s" y="%s" width="%s" height="%s" href="%s" preserveAspectRatio="none">%s</image>`,
			num(x), num(top), num(p.Size), num(p.Size), src, title(p.Captions[i]))
		d.raw(`<rect x="%s" y="%s" width="%s" height="%s" fill="none" stroke="%s"/>`,
			num(x+0.5), num(top+0.5), num(p.Size-1), num(p.Size-1), Grid)
		d.text(x+p.Size/2, top+p.Size+15, 11, Muted, "middle", p.Captions[i])
	}
	return d.String()
}
