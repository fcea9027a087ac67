package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"

	"vitlens/vit"
	"vitlens/vit/bundle"
	"vitlens/vit/checkpoint"
	"vitlens/vit/preprocess"
)

// modelFlags are the flags every command that loads a model shares.
type modelFlags struct {
	path, preset, classes string
	head                  string
	configFile            string
	heads                 headCount
	nonStrict             bool
}

func (f *modelFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.path, "model", "", "checkpoint file (.safetensors, .pth, .pt); default: the bundled demo model")
	fs.StringVar(&f.preset, "preset", "", "preprocessing preset: google, deit, miil, cifar, fmnist (default: the checkpoint's metadata, a preprocessor_config.json beside it, or inferred from the weights; else google, with a warning)")
	fs.StringVar(&f.classes, "classes", "", "class names: text file (one per line), JSON list or id2label JSON")
	fs.StringVar(&f.head, "head", "", "class-embedding head (safetensors: weight [classes, embed], optional bias, metadata classes) read after the model's final norm and projection, e.g. CLIP zero-shot text embeddings (tools/make_head.py)")
	fs.StringVar(&f.configFile, "config", "", "config JSON overriding what is inferred (Hugging Face config.json keys or vitlens's: image_size, patch_size, dim, depth, heads, mlp_dim, classes, qkv_bias, ln_eps, class_token, pool, post_norm, dist_token, registers, norm_pre, act: gelu, gelu_tanh or quick_gelu; an image_size unlike the checkpoint's resizes its position embedding as timm does); default: config.json beside the weights")
	fs.Var(&f.heads, "heads", "attention heads, when the checkpoint does not say (default: dim/64)")
	fs.BoolVar(&f.nonStrict, "non-strict", false, "skip unknown tensors instead of failing (e.g. DeiT refinement heads)")
}

// open loads the model; log hears how the preset was chosen when the user
// did not give it (a warning when it is only assumed).
func (f *modelFlags) open(log io.Writer) (*bundle.Bundle, error) {
	opt := bundle.Options{Preset: f.preset, ClassesFile: f.classes, HeadFile: f.head,
		Checkpoint: checkpoint.Options{NonStrict: f.nonStrict}}
	if f.heads > 0 {
		opt.Checkpoint.Override = &vit.Config{Heads: int(f.heads)}
	}
	if f.configFile != "" {
		data, err := os.ReadFile(f.configFile)
		if err != nil {
			return nil, err
		}
		opt.Checkpoint.ConfigJSON, opt.Checkpoint.ConfigName = data, f.configFile
	}
	b, err := bundle.Open(f.path, opt)
	if err != nil {
		return nil, err
	}
	switch b.PresetSource.How {
	case preprocess.PresetAssumed:
		fmt.Fprintf(log, "warning: preset assumed: %s (%s); give --preset\n", b.Preset.Name, b.PresetSource.From)
	case preprocess.PresetInferred:
		fmt.Fprintf(log, "preset inferred: %s (from %s); --preset overrides it\n", b.Preset.Name, b.PresetSource.From)
	}
	return b, nil
}

// headCount is --heads: unset is 0, and an explicit 0 or a negative count is
// refused when the flag is parsed (a plain int flag could not tell "--heads 0"
// from "not given", and would silently run with the inferred count).
type headCount int

func (h *headCount) String() string {
	if h == nil || *h == 0 {
		return ""
	}
	return strconv.Itoa(int(*h))
}

func (h *headCount) Set(s string) error {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return fmt.Errorf("give a positive number of attention heads, e.g. --heads 12")
	}
	*h = headCount(n)
	return nil
}

// openModelArg parses the flags of a command whose one optional argument is
// the model file (info, hooks) and opens the model.
func openModelArg(fs *flag.FlagSet, mf *modelFlags, args []string) (*bundle.Bundle, error) {
	if err := parseFlags(fs, args); err != nil {
		return nil, err
	}
	if fs.NArg() > 1 {
		fs.Usage()
		return nil, errUsage
	}
	if fs.NArg() == 1 {
		mf.path = fs.Arg(0)
	}
	return mf.open(os.Stderr)
}
