package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strings"

	"vitlens/vit/analysis"
	"vitlens/vit/experiment"
	"vitlens/vit/explain/batch"
	"vitlens/vit/figures"
	"vitlens/vit/probe"
	"vitlens/vit/results"
)

func init() {
	register("summary", "the paper's identifiability and memory statistics of a results folder", runSummary)
	register("merge", "merge the shard folders (or s3:// prefixes) of one run: vitlens merge OUT SHARD...", runMerge)
}

func runSummary(args []string, stdout io.Writer) error {
	fs := newFlags("summary", "RESULTS")
	random := fs.String("random", "", "results folder of the random-init baseline over the same images (Wilcoxon test per block)")
	randomTokens := fs.String("random-tokens", string(analysis.PairAllTokens), "tokens of the Wilcoxon test against --random: all_tokens (the original's: every image and token, [CLS] included) or image_tokens")
	unperturbed := fs.String("unperturbed", "", "for a perturb-tokens run: the extract over the same images to compare with (the original's print_context_perturb table)")
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
	// A statistic over some of the rows would look like one over all of them.
	for _, d := range []string{dir, *random} {
		if d != "" {
			if err := results.Verify(d); err != nil {
				return err
			}
		}
	}
	var rep any
	var text func(io.Writer) // the report as tables
	switch m.Experiment {
	case "removal":
		rep, text, err = withTables(batch.SummarizeRemoval(dir))
	case "probe":
		rep, text, err = withTables(probe.Summarize(dir))
	case "explain":
		return fmt.Errorf("%s holds explanation maps; see its maps table and PNGs, or `vitlens report %s`", dir, dir)
	case "memories":
		var r *experiment.MemoryReport
		r, err = experiment.SummarizeMemories(dir, *perm, *seed)
		rep, text = r, func(w io.Writer) { writeMemoryText(w, r, figures.ClassNames(m)) }
	default:
		pairs, perr := analysis.ParsePairTokens(*randomTokens)
		if perr != nil {
			return fmt.Errorf("--random-tokens: %w", perr)
		}
		if *random == "" && flagSet(fs, "random-tokens") {
			return fmt.Errorf("--random-tokens chooses the tokens of the test against a random-init run: give that run with --random")
		}
		var r *analysis.Report
		r, err = experiment.Summarize(dir, experiment.SummaryOptions{Random: *random, RandomTokens: pairs, Unperturbed: *unperturbed,
			Permutation: *perm, Seed: *seed})
		rep, text = r, func(w io.Writer) {
			fmt.Fprintf(w, "%s of %s (%s)\n", m.Experiment, m.Dataset, m.ModelPath)
			r.WriteText(w)
			if r.ContextPerturbation != nil {
				fmt.Fprintln(w)
				r.ContextPerturbation.WriteText(w)
			}
		}
	}
	if err != nil {
		return err
	}
	if !*asJSON {
		text(stdout)
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

// withTables returns a report that prints itself as tables, with its printer.
func withTables[R interface{ WriteText(io.Writer) }](r R, err error) (any, func(io.Writer), error) {
	return r, r.WriteText, err
}

func writeMemoryText(w io.Writer, r *experiment.MemoryReport, classes []string) {
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
	if len(r.Values) > 0 {
		fmt.Fprintf(w, "\ninterpretable value vectors: the %d most-used memories per block (share of tokens with it among their top-5) and the top-5 classes of E·W_out's column\n", experiment.MostUsedMemories)
		fmt.Fprintln(w, "block\tmemory\tshare\tclasses")
		for _, v := range r.Values {
			names := make([]string, len(v.Classes))
			for i, c := range v.Classes {
				names[i] = fmt.Sprint(c)
				if int(c) < len(classes) {
					names[i] = classes[c]
				}
			}
			fmt.Fprintf(w, "%d\t%d\t%.3f\t%s\n", v.Block+1, v.Memory, v.Share, strings.Join(names, ", "))
		}
	}
	for _, n := range r.Notes {
		fmt.Fprintln(w, "note:", n)
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
