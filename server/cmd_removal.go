package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"vitlens/vit/experiment"
	"vitlens/vit/explain"
	"vitlens/vit/explain/batch"
	"vitlens/vit/probe"
	"vitlens/vit/results"
)

func init() {
	register("removal", "token-removal test of the explainability maps: accuracy as tokens are dropped, AUCs", runRemoval)
}

func splitList(s string) []string {
	var out []string
	for _, x := range strings.Split(s, ",") {
		if x = strings.TrimSpace(x); x != "" {
			out = append(out, x)
		}
	}
	return out
}

func runRemoval(args []string, stdout io.Writer) error {
	fs := newFlags("removal", "")
	var rf runFlags
	rf.register(fs)
	orderings := fs.String("orderings", "ours,chefer,random", "orderings to test: ours, chefer, probe (needs -probe), random")
	directions := fs.String("directions", "negative,positive", "negative (least important removed first) and/or positive (most important first)")
	seeds := fs.Int("random-seeds", 10, "random orderings per image (seeds 0..n-1)")
	double := fs.Bool("double-softmax", false, "the original code's loss for our map: CE(softmax(logits)) (spec A13)")
	probeDir := fs.String("probe", "", "probe results folder over the same images (vitlens probe), for the probe ordering")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return errUsage
	}
	spec := explain.RemovalSpec{Orderings: splitList(*orderings), Directions: splitList(*directions),
		RandomSeeds: *seeds, DoubleSoftmax: *double}
	params := spec.Params()
	if *probeDir != "" {
		sums, err := probe.TokenRankSums(*probeDir)
		if err != nil {
			return err
		}
		spec.ProbeRankSums = sums
		pm, err := results.ReadManifest(*probeDir)
		if err != nil {
			return err
		}
		params["probe"] = pm.ModelSHA256 + " " + pm.Dataset + " " + pm.Selection
	}
	o, err := rf.openCPUInputs("removal", nil, "", os.Stderr)
	if err != nil {
		return err
	}
	if err := spec.Validate(o.bundle.Model.Config); err != nil {
		return err
	}
	if err := o.create("removal", params, batch.RemovalTables(), append([]string{"removal"}, args...), "cpu", os.Stderr); err != nil {
		return err
	}
	defer o.close()
	r := &batch.Removal{Bundle: o.bundle, Data: o.data, Out: o.out, Spec: spec, Shard: o.shard,
		NumShards: o.numShards, Log: os.Stderr}
	if !rf.quiet {
		r.Progress = newProgress(os.Stderr, "removal")
	}
	st, err := r.Run()
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "removal: %d images (%.1f img/s), %d skipped, %d chunks resumed -> %s\n",
		st.Images, float64(st.Images)/st.Elapsed.Seconds(), st.Skipped, st.ResumedChunks, o.out.Dir())
	if o.numShards > 1 {
		return nil // summarise after `vitlens merge`
	}
	rep, err := batch.SummarizeRemoval(o.out.Dir())
	if err != nil {
		return err
	}
	rep.WriteText(stdout)
	return experiment.WriteJSON(o.out.Dir(), "summary.json", rep)
}
