// Package public holds the static assets that ship with vitlens: the demo
// model, its class names, sample images and the bundled class lists. The
// native binary embeds them all, so it works offline; the web app embeds
// only the class lists and fetches the demo model and samples from the
// server, which publishes them under /web/demo/ (DemoWebDir), so that
// app.wasm stays small and the page paints before the model arrives.
package public

// Paths inside Files (and, in the browser, under DemoWebDir).
const (
	DemoModel       = "models/fmnist-vit.safetensors"
	DemoClasses     = "models/fmnist-classes.txt"
	ImageNetClasses = "classes/imagenet1k.txt"
	SamplesDir      = "samples"
	// SamplesIndex lists the sample images (column "file"), so that they
	// can be found where no directory can be listed (over HTTP).
	SamplesIndex = "samples/labels.csv"
	// DemoWebDir is where the server publishes Files, under /web/.
	DemoWebDir = "demo"
)
