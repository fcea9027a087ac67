package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"

	"vitlens/vit/experiment"
	"vitlens/vit/explain/batch"
	"vitlens/vit/probe"
	"vitlens/vit/results"
)

func init() {
	register("summary", "the paper's identifiability and memory statistics of a results folder", runSummary)
	register("merge", "merge the shard folders of one run: vitlens merge OUT SHARD...", runMerge)
}

func runSummary(args []string, stdout io.Writer) error {
	fs := newFlags("summary", "RESULTS")
	random := fs.String("random", "", "results folder of the random-init baseline over the same images (Wilcoxon test per block)")
	perm := fs.Int("permutations", 300, "rounds of the permutation tests (class vs context, correct vs incorrect)")
	seed := fs.Uint64("seed", 0, "seed of the permutation tests")
	asJSON := fs.Bool("json", false, "print JSON instead of tables")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errUsage
	}
	dir := fs.Arg(0)
	m, err := results.ReadManifest(dir)
	if err != nil {
		return err
	}
	var rep any
	switch m.Experiment {
	case "removal":
		r, err := batch.SummarizeRemoval(dir)
		if err != nil {
			return err
		}
		rep = r
		if !*asJSON {
			r.WriteText(stdout)
		}
	case "probe":
		r, err := probe.Summarize(dir)
		if err != nil {
			return err
		}
		rep = r
		if !*asJSON {
			r.WriteText(stdout)
		}
	case "explain":
		return fmt.Errorf("%s holds explanation maps; see its maps table and PNGs, or `vitlens report %s`", dir, dir)
	case "memories":
		mr, err := experiment.SummarizeMemories(dir, *perm, *seed)
		if err != nil {
			return err
		}
		rep = mr
		if !*asJSON {
			writeMemoryText(stdout, mr)
		}
	default:
		r, err := experiment.Summarize(dir, experiment.SummaryOptions{Random: *random, Permutation: *perm, Seed: *seed})
		if err != nil {
			return err
		}
		rep = r
		if !*asJSON {
			fmt.Fprintf(stdout, "%s of %s (%s)\n", m.Experiment, m.Dataset, m.ModelPath)
			r.WriteText(stdout)
		}
	}
	if err := experiment.WriteJSON(dir, "summary.json", rep); err != nil {
		return err
	}
	if *asJSON {
		data, err := json.MarshalIndent(experiment.NaNToNull(rep), "", "  ")
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, string(data))
	}
	return nil
}

func writeMemoryText(w io.Writer, r *experiment.MemoryReport) {
	f := func(v float64) string {
		if math.IsNaN(v) {
			return "-"
		}
		return fmt.Sprintf("%.3f", v)
	}
	fmt.Fprintf(w, "key-value memories of %s\nblock\tagree\tagree_rand\tcls_agree\tcompose\tcorr-inc\tp\tcls_value\tcls_val_rand\tp\n", r.Layer)
	for _, b := range r.Blocks {
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", b.Block+1, f(b.Agreement), f(b.AgreementRandom), f(b.CLSAgreement),
			f(b.Composition), f(b.CorrectMinusIncorrect), f(b.CorrectP), f(b.ClassValue), f(b.ClassValueRandom), f(b.ClassValueP))
	}
}

func runMerge(args []string, stdout io.Writer) error {
	fs := newFlags("merge", "OUT SHARD...")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() < 2 {
		fs.Usage()
		return errUsage
	}
	if err := results.Merge(fs.Arg(0), fs.Args()[1:]); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "merged %d shards into %s\n", fs.NArg()-1, fs.Arg(0))
	return nil
}
