package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"vitlens/vit"
	"vitlens/vit/bundle"
	"vitlens/vit/dataset"
	"vitlens/vit/experiment"
	"vitlens/vit/explain"
	"vitlens/vit/explain/batch"
	"vitlens/vit/probe"
	"vitlens/vit/results"
)

func init() {
	register("removal", "token-removal test of the explainability maps: accuracy as tokens are dropped, AUCs", runRemoval)
}

// openedRun is what the batch commands of this file and its siblings
// (explain, probe) share: the model, the selected dataset and the results
// folder, created like runFlags.open does for the lens experiments.
type openedRun struct {
	bundle           *bundle.Bundle
	data             dataset.Dataset
	out              *results.Run
	shard, numShards int
}

// openRun opens model, dataset and results folder for an experiment whose
// parameters are not a lens spec. A non-nil files dataset replaces the one
// the flags select (explain IMAGE...); sel then describes it.
func openRun(rf *runFlags, kind string, params map[string]string, args []string, stderr io.Writer, files dataset.Dataset, filesSel string) (*openedRun, error) {
	b, err := rf.model.open()
	if err != nil {
		return nil, err
	}
	modelHash := "demo"
	if rf.model.path != "" {
		if modelHash, err = results.FileSHA256(rf.model.path); err != nil {
			return nil, err
		}
	}
	var seed *uint64
	if rf.randomSeed >= 0 {
		s := uint64(rf.randomSeed)
		seed = &s
		random, err := vit.NewRandom(b.Model.Config, s)
		if err != nil {
			return nil, err
		}
		b = &bundle.Bundle{Model: random, Info: b.Info, Preset: b.Preset, Classes: b.Classes,
			PresetSource: b.PresetSource, ClassesSource: b.ClassesSource}
		modelHash = fmt.Sprintf("random:%d:%s", s, modelHash)
	}
	ds, sel := files, filesSel
	if ds == nil {
		if ds, sel, err = rf.dataset(); err != nil {
			return nil, err
		}
	}
	o := &openedRun{bundle: b, data: ds, numShards: 1}
	if rf.shard != "" {
		if o.shard, o.numShards, err = dataset.ParseShard(rf.shard); err != nil {
			return nil, err
		}
	}
	format, err := results.ParseFormat(rf.format)
	if err != nil {
		return nil, err
	}
	out := rf.out
	if out == "" {
		name := "demo"
		if rf.model.path != "" {
			name = strings.TrimSuffix(baseName(rf.model.path), ".safetensors")
		}
		if seed != nil {
			name += fmt.Sprintf("-random%d", *seed)
		}
		data := rf.data
		if files != nil {
			data = files.Name()
		}
		out = fmt.Sprintf("results/%s-%s-%s", kind, name, data)
		if rf.shard != "" {
			out += "-shard" + strings.ReplaceAll(rf.shard, "/", "of")
		}
	}
	man := results.Manifest{Tool: "vitlens", Version: version, Command: append([]string{"vitlens"}, args...),
		Experiment: kind, Params: params, ModelPath: b.Info.Path, ModelSHA256: modelHash,
		Family: string(b.Info.Family), Preset: b.Preset.Name, Config: b.Model.Config,
		Dataset: ds.Name(), DatasetRoot: rf.root, Selection: sel,
		Total: experiment.ShardImages(ds.Len(), rf.chunk, o.shard, o.numShards), ChunkSize: rf.chunk,
		Seed: seed, Shard: rf.shard, Backend: "cpu"}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, err
	}
	if o.out, err = results.Create(out, man, format); err != nil {
		return nil, err
	}
	fmt.Fprintf(stderr, "%s: %d images of %s with %s -> %s\n", kind, ds.Len(), ds.Name(), b.Info.Path, out)
	return o, nil
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
	o, err := openRun(&rf, "removal", params, append([]string{"removal"}, args...), os.Stderr, nil, "")
	if err != nil {
		return err
	}
	if err := spec.Validate(o.bundle.Model.Config); err != nil {
		return err
	}
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
