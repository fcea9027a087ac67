package main

import (
	"flag"

	"vitlens/vit"
	"vitlens/vit/bundle"
	"vitlens/vit/checkpoint"
)

// modelFlags are the flags every command that loads a model shares.
type modelFlags struct {
	path, preset, classes string
	heads                 int
	nonStrict             bool
}

func (f *modelFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.path, "model", "", "checkpoint file (.safetensors, .pth, .pt); default: the bundled demo model")
	fs.StringVar(&f.preset, "preset", "", "preprocessing preset: google, deit, miil, cifar, fmnist (default: from the checkpoint, else google)")
	fs.StringVar(&f.classes, "classes", "", "class names: text file (one per line), JSON list or id2label JSON")
	fs.IntVar(&f.heads, "heads", 0, "attention heads, when the checkpoint does not say (default: dim/64)")
	fs.BoolVar(&f.nonStrict, "non-strict", false, "skip unknown tensors instead of failing (e.g. DeiT refinement heads)")
}

func (f *modelFlags) open() (*bundle.Bundle, error) {
	opt := bundle.Options{Preset: f.preset, ClassesFile: f.classes,
		Checkpoint: checkpoint.Options{NonStrict: f.nonStrict}}
	if f.heads > 0 {
		opt.Checkpoint.Override = &vit.Config{Heads: f.heads}
	}
	return bundle.Open(f.path, opt)
}
