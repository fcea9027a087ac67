// Package public holds the static assets that ship with vitlens: the demo
// model, its class names, sample images and the bundled class lists. The
// native binary and the web app embed them, so both work offline.
package public

import "embed"

// Files holds models/, classes/ and samples/.
//
//go:embed models classes samples
var Files embed.FS

// Paths inside Files.
const (
	DemoModel       = "models/fmnist-vit.safetensors"
	DemoClasses     = "models/fmnist-classes.txt"
	ImageNetClasses = "classes/imagenet1k.txt"
	SamplesDir      = "samples"
)
