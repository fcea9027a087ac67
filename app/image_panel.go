package app

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/maxence-charriere/go-app/v10/pkg/app"
)

// Thumb is a sample image's name and the URL of its file.
type Thumb struct{ Name, URI string }

// ImagePanel gives images: picker, drop or paste, and the sample gallery.
type ImagePanel struct {
	app.Compo
	Samples []Thumb
	Current string
}

func (ip *ImagePanel) Render() app.UI {
	return card("vl-images", "", "Image", nil,
		app.Div().Class("vl-buttons").Body(
			app.Label().Class("vl-btn vl-btn-primary").Body(
				app.Input().ID("vl-image-file").Type("file").Class("vl-file").Accept("image/*").OnChange(pickFiles),
				app.Text("Open image…"),
			),
		),
		app.P().Class("vl-hint").Text("…or drop an image (or a model) anywhere on the page, or paste one."),
		app.P().Class("vl-current").Title(ip.Current).Body(app.Span().Class("vl-muted").Text("showing "), app.Text(ip.Current)),
		app.If(len(ip.Samples) > 0, func() app.UI {
			return app.Div().Class("vl-gallery").Body(
				app.Range(ip.Samples).Slice(func(i int) app.UI {
					s := ip.Samples[i]
					cls := "vl-thumb"
					if s.Name == ip.Current {
						cls += " vl-thumb-on"
					}
					return app.Button().Class(cls).Title(sampleLabel(s.Name)).DataSet("sample", i).Body(
						app.Img().Src(s.URI).Alt(sampleLabel(s.Name)),
					).OnClick(func(ctx app.Context, e app.Event) { ctx.NewActionWithValue(actSample, i) })
				}),
			)
		}),
	)
}

// sampleLabel turns "fmnist-test-0012-sneaker.png" into "sneaker (test 12)".
func sampleLabel(name string) string {
	base := strings.TrimSuffix(name, pathExt(name))
	parts := strings.Split(base, "-")
	if len(parts) >= 4 && parts[0] == "fmnist" {
		if n, err := strconv.Atoi(parts[2]); err == nil {
			return fmt.Sprintf("%s (test %d)", strings.Join(parts[3:], " "), n)
		}
	}
	return name
}
