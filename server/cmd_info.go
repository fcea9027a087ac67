package main

import (
	"fmt"
	"io"
	"strings"

	"vitlens/vit"
)

func init() {
	register("info", "describe a checkpoint: family, config, parameters, suggested preprocessing", runInfo)
}

func runInfo(args []string, stdout io.Writer) error {
	fs := newFlags("info", "[MODEL]")
	var mf modelFlags
	mf.register(fs)
	b, err := openModelArg(fs, &mf, args)
	if err != nil {
		return err
	}
	c := b.Model.Config
	fmt.Fprintf(stdout, "file         %s\n", b.Info.Path)
	fmt.Fprintf(stdout, "format       %s, %s naming\n", b.Info.Format, b.Info.Family)
	fmt.Fprintf(stdout, "config       (%s)\n", b.Info.ConfigSource)
	fmt.Fprintf(stdout, "  image      %d×%d, %d channels, patch %d (%d×%d grid)\n", c.ImageSize, c.ImageSize, c.Channels, c.PatchSize, c.GridSize(), c.GridSize())
	fmt.Fprintf(stdout, "  blocks     %d, dim %d, heads %d (head dim %d), MLP %d\n", c.Depth, c.Dim, c.Heads, c.HeadDim(), c.MLPDim)
	fmt.Fprintf(stdout, "  tokens     %d (%s)\n", c.NumTokens(), tokenNote(c))
	if g := b.Info.PosGrid; g > 0 {
		fmt.Fprintf(stdout, "  position embedding resized from %d×%d to %d×%d patches (bicubic, as timm)\n", g, g, c.GridSize(), c.GridSize())
	}
	block := "pre-norm"
	if c.PostNorm {
		block = "post-norm (ResPostBlock)"
	}
	act := c.Act
	if act == "" {
		act = vit.ActGELU
	}
	if c.NormPre {
		block += " after norm_pre"
	}
	fmt.Fprintf(stdout, "  blocks are %s, qkv bias %v, LN eps %g, activation %s, pooling %s\n", block, c.QKVBias, c.LNEps, act, c.Pool)
	fmt.Fprintf(stdout, "  activation from %s\n", b.Info.ActSource)
	fmt.Fprintf(stdout, "  classes    %d (names: %s)\n", c.Classes, b.ClassesSource)
	if b.Model.Normalize != nil {
		fmt.Fprintf(stdout, "  head file  the %d-wide embedding is L2-normalised before it (metadata \"normalize\": \"true\")\n", b.Model.Normalize.Proj.Out)
	}
	fmt.Fprintf(stdout, "parameters   %d (%.1f M)\n", b.Model.NumParams(), float64(b.Model.NumParams())/1e6)
	fmt.Fprintf(stdout, "preset       %s (%s)\n", b.Preset.Describe(), b.PresetSource)
	if acc := b.Info.Metadata["test_accuracy"]; acc != "" {
		fmt.Fprintf(stdout, "accuracy     %s (from the checkpoint's metadata)\n", acc)
	}
	if len(b.Info.Ignored) > 0 {
		fmt.Fprintf(stdout, "ignored      %d tensors (non-strict): %v\n", len(b.Info.Ignored), b.Info.Ignored)
	}
	return nil
}

func tokenNote(c vit.Config) string {
	var parts []string
	if c.ClassToken {
		parts = append(parts, "[CLS]")
	}
	if c.DistToken {
		parts = append(parts, "distillation token")
	}
	if c.Registers > 0 {
		parts = append(parts, fmt.Sprintf("%d registers", c.Registers))
	}
	if len(parts) == 0 {
		return "patches only, no [CLS]"
	}
	return strings.Join(append(parts, "patches"), " + ")
}
