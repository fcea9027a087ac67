package main

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"vitlens/vit"
)

func init() {
	register("hooks", "list a model's hook points (TransformerLens names) with their shapes", runHooks)
}

func runHooks(args []string, stdout io.Writer) error {
	fs := newFlags("hooks", "[MODEL]")
	var mf modelFlags
	mf.register(fs)
	b, err := openModelArg(fs, &mf, args)
	if err != nil {
		return err
	}
	c := b.Model.Config
	aliases := map[vit.HookPoint][]string{}
	for name, p := range vit.HookAliases {
		aliases[p] = append(aliases[p], name)
	}
	fmt.Fprintf(stdout, "%-32s %-14s %s\n", "hook", "shape", "also")
	for _, h := range c.Hooks() {
		shape := strings.ReplaceAll(fmt.Sprint(c.HookShape(h, c.NumTokens())), " ", ", ")
		var also []string
		for _, a := range aliases[h.Point] {
			also = append(also, fmt.Sprintf("blocks.%d.%s", h.Block, a))
		}
		sort.Strings(also)
		fmt.Fprintf(stdout, "%-32s %-14s %s\n", h.Name(), shape, strings.Join(also, " "))
	}
	return nil
}
