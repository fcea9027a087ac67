package main

import (
	"flag"
	"fmt"
	"io"
	"strings"

	"vitlens/vit"
	"vitlens/vit/experiment"
	"vitlens/vit/memory"
)

func init() {
	register("extract", "lens readouts (rank, top-5, target logit) of every image, token, block and site", runExtract)
	register("perturb-attn", "extract under an attention edit: --mode self_only|no_cls", runPerturbAttn)
	register("perturb-tokens", "extract with context or class-labelled tokens removed: --drop context|class_label", runPerturbTokens)
	register("memories", "key-value memory analyses of attn or mlp: --layer attn|mlp", runMemories)
}

func parseSites(s string) ([]vit.Site, error) {
	var out []vit.Site
	for _, name := range strings.Split(s, ",") {
		site, err := vit.ParseSite(strings.TrimSpace(name))
		if err != nil {
			return nil, err
		}
		out = append(out, site)
	}
	return out, nil
}

func runExtract(args []string, stdout io.Writer) error {
	return runExperiment("extract", args, stdout, func(fs *flag.FlagSet) func() (experiment.Spec, error) {
		sites := fs.String("sites", "hs,hs_mid,attn,mlp", "sites to project at every block")
		return func() (experiment.Spec, error) {
			s, err := parseSites(*sites)
			return experiment.Spec{Kind: experiment.Extract, Sites: s, TopK: 5, Masks: true}, err
		}
	})
}

func runPerturbAttn(args []string, stdout io.Writer) error {
	return runExperiment("perturb-attn", args, stdout, func(fs *flag.FlagSet) func() (experiment.Spec, error) {
		mode := fs.String("mode", "", "attention edit in every block: self_only or no_cls")
		return func() (experiment.Spec, error) {
			e, err := vit.ParseAttnEdit(*mode)
			if err == nil && e == vit.EditNone {
				err = fmt.Errorf("--mode is required (self_only or no_cls)")
			}
			return experiment.Spec{Kind: experiment.PerturbAttn, Sites: []vit.Site{vit.SiteHS}, TopK: 5, Edit: e, Masks: true}, err
		}
	})
}

func runPerturbTokens(args []string, stdout io.Writer) error {
	return runExperiment("perturb-tokens", args, stdout, func(fs *flag.FlagSet) func() (experiment.Spec, error) {
		drop := fs.String("drop", "", "tokens to remove: context or class_label")
		return func() (experiment.Spec, error) {
			return experiment.Spec{Kind: experiment.PerturbTokens, Sites: []vit.Site{vit.SiteHS}, TopK: 5, Drop: *drop, Masks: true}, nil
		}
	})
}

func runMemories(args []string, stdout io.Writer) error {
	return runExperiment("memories", args, stdout, func(fs *flag.FlagSet) func() (experiment.Spec, error) {
		layer := fs.String("layer", "mlp", "attn or mlp")
		seed := fs.Uint64("seed", 0, "seed of the random class baseline and the random model of the class-value test")
		return func() (experiment.Spec, error) {
			l, err := memory.ParseLayer(*layer)
			site := vit.SiteMLP
			if l == memory.Attn {
				site = vit.SiteAttn
			}
			return experiment.Spec{Kind: experiment.Memories, Sites: []vit.Site{site}, TopK: 5, Layer: l, Seed: *seed}, err
		}
	})
}
