package main

import (
	"flag"
	"os"

	"vitlens/vit"
	"vitlens/vit/bundle"
	"vitlens/vit/checkpoint"
)

// modelFlags are the flags every command that loads a model shares.
type modelFlags struct {
	path, preset, classes string
	configFile            string
	heads                 int
	nonStrict             bool
}

func (f *modelFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.path, "model", "", "checkpoint file (.safetensors, .pth, .pt); default: the bundled demo model")
	fs.StringVar(&f.preset, "preset", "", "preprocessing preset: google, deit, miil, cifar, fmnist (default: from the checkpoint, else google)")
	fs.StringVar(&f.classes, "classes", "", "class names: text file (one per line), JSON list or id2label JSON")
	fs.StringVar(&f.configFile, "config", "", "config JSON overriding what is inferred (Hugging Face config.json keys or vitlens's: image_size, patch_size, dim, depth, heads, mlp_dim, classes, qkv_bias, ln_eps, class_token, pool, post_norm); default: config.json beside the weights")
	fs.IntVar(&f.heads, "heads", 0, "attention heads, when the checkpoint does not say (default: dim/64)")
	fs.BoolVar(&f.nonStrict, "non-strict", false, "skip unknown tensors instead of failing (e.g. DeiT refinement heads)")
}

func (f *modelFlags) open() (*bundle.Bundle, error) {
	opt := bundle.Options{Preset: f.preset, ClassesFile: f.classes,
		Checkpoint: checkpoint.Options{NonStrict: f.nonStrict}}
	if f.heads > 0 {
		opt.Checkpoint.Override = &vit.Config{Heads: f.heads}
	}
	if f.configFile != "" {
		data, err := os.ReadFile(f.configFile)
		if err != nil {
			return nil, err
		}
		opt.Checkpoint.ConfigJSON = data
	}
	return bundle.Open(f.path, opt)
}
