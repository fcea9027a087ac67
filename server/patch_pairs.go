package main

import (
	"encoding/csv"
	"fmt"
	"image"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"

	"vitlens/vit/bundle"
	"vitlens/vit/dataset"
	"vitlens/vit/experiment"
	"vitlens/vit/preprocess"
	"vitlens/vit/results"
)

// patchRow is one patch of one pair (the patches table).
type patchRow struct {
	Pair        int32   `parquet:"pair"`
	Hook        string  `parquet:"hook"`
	Block       int32   `parquet:"block"`
	Head        int32   `parquet:"head"`
	Token       int32   `parquet:"token"`
	Metric      float64 `parquet:"metric"`
	Effect      float64 `parquet:"effect"`
	Recovered   float64 `parquet:"recovered"`
	Attribution float64 `parquet:"attribution"` // NaN without --attribution
}

// pairRow is one pair (the pairs table).
type pairRow struct {
	Pair          int32   `parquet:"pair"`
	Clean         string  `parquet:"clean"`
	Corrupt       string  `parquet:"corrupt"`
	Metric        string  `parquet:"metric"`
	CleanMetric   float64 `parquet:"clean_metric"`
	CorruptMetric float64 `parquet:"corrupt_metric"`
	Pearson       float64 `parquet:"attribution_pearson"` // NaN without --attribution
}

// pairSet is a pairs CSV as a dataset of its clean images (so the run's
// manifest fingerprints it like any selection); the corrupted image and the
// metric ride along.
type pairSet struct {
	clean, corrupt, metric []string
	classes                []string
}

func readPairs(path string) (*pairSet, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("--pairs: %w", err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		return nil, fmt.Errorf("--pairs %s: %w", path, err)
	}
	if len(rows) < 2 {
		return nil, fmt.Errorf("--pairs %s: no pairs (want a header clean,corrupt[,metric] and a row per pair)", path)
	}
	col := func(name string) int { return slices.Index(rows[0], name) }
	ci, ki, mi := col("clean"), col("corrupt"), col("metric")
	if ci < 0 || ki < 0 {
		return nil, fmt.Errorf("--pairs %s: the header %v lacks clean or corrupt", path, rows[0])
	}
	dir := filepath.Dir(path)
	abs := func(p string) string {
		if filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(dir, p)
	}
	ps := &pairSet{}
	for i, r := range rows[1:] {
		if r[ci] == "" || r[ki] == "" {
			return nil, fmt.Errorf("--pairs %s: row %d has an empty clean or corrupt path", path, i+2)
		}
		m := ""
		if mi >= 0 {
			m = r[mi]
		}
		ps.clean, ps.corrupt, ps.metric = append(ps.clean, abs(r[ci])), append(ps.corrupt, abs(r[ki])), append(ps.metric, m)
	}
	return ps, nil
}

func (p *pairSet) Name() string      { return "pairs" }
func (p *pairSet) Len() int          { return len(p.clean) }
func (p *pairSet) Classes() []string { return p.classes }
func (p *pairSet) Item(i int) dataset.Item {
	return dataset.Item{Index: i, ID: p.clean[i] + " -> " + p.corrupt[i], Label: -1}
}

func (p *pairSet) Image(i int) (image.Image, error) { return preprocess.DecodeFile(p.clean[i]) }

func (p *pairSet) PatchLabels(i, grid int) ([]uint8, bool, error) { return nil, false, nil }

// runPatchPairs patches every pair of a pairs CSV, chunk by chunk, into a
// results folder (resumable, shardable like every batch command).
func runPatchPairs(rf *runFlags, path string, params map[string]string, args []string, stdout io.Writer, job func(*bundle.Bundle) (*patchJob, error)) error {
	ps, err := readPairs(path)
	if err != nil {
		return err
	}
	if err := checkBackendName(rf.backend); err != nil {
		return err
	}
	o, err := rf.openInputs(ps, "pairs="+path, os.Stderr)
	if err != nil {
		return err
	}
	ps.classes = o.bundle.Classes
	j, err := job(o.bundle)
	if err != nil {
		return err
	}
	defer j.close()
	if err := o.create("patch", params, []results.Table{results.TableOf[patchRow]("patches"), results.TableOf[pairRow]("pairs"), results.TableOf[experiment.SkipRow]("skipped")}, append([]string{"patch"}, args...), j.backend, os.Stderr); err != nil {
		return err
	}
	defer o.close()
	var progress func(done, total int)
	if !rf.quiet {
		progress = newProgress(os.Stderr, "patch")
	}
	st, err := experiment.RunChunks(o.out, ps.Len(), o.shard, o.numShards, progress, func(k, lo, hi int) (int, int, error) {
		var patches []patchRow
		var pairs []pairRow
		var skips []experiment.SkipRow
		for i := lo; i < hi; i++ {
			pr, err := patchOnePair(o.bundle, j, ps, i)
			if err != nil {
				skips = append(skips, experiment.SkipRow{Image: int32(i), ID: ps.clean[i] + " -> " + ps.corrupt[i], Reason: err.Error()})
				fmt.Fprintf(os.Stderr, "skipped pair %d: %v\n", i, err)
				continue
			}
			row := pairRow{Pair: int32(i), Clean: ps.clean[i], Corrupt: ps.corrupt[i], Metric: pr.metric.String(),
				CleanMetric: pr.clean, CorruptMetric: pr.base, Pearson: math.NaN()}
			if pr.est != nil {
				row.Pearson = pr.pearson
			}
			pairs = append(pairs, row)
			for n, r := range pr.res {
				a := math.NaN()
				if pr.est != nil {
					a = pr.est[n]
				}
				block := r.Hook.Block
				if !r.Hook.Point.PerBlock() {
					block = -1
				}
				patches = append(patches, patchRow{Pair: int32(i), Hook: r.Hook.Name(), Block: int32(block), Head: int32(r.Head), Token: int32(r.Token),
					Metric: r.Metric, Effect: r.Metric - pr.base, Recovered: r.Recovered, Attribution: a})
			}
		}
		for _, err := range []error{
			results.WriteChunk(o.out, "patches", k, patches),
			results.WriteChunk(o.out, "pairs", k, pairs),
			results.WriteChunk(o.out, "skipped", k, skips),
		} {
			if err != nil {
				return 0, 0, err
			}
		}
		return len(pairs), len(skips), o.out.CommitChunk(k)
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "patch: %d pairs (%d skipped, %d chunks resumed) -> %s (tables patches, pairs, skipped)\n", st.Images, st.Skipped, st.ResumedChunks, o.out.Dir())
	return nil
}

func patchOnePair(b *bundle.Bundle, j *patchJob, ps *pairSet, i int) (*pairResult, error) {
	clean, err := loadImage(b, ps.clean[i])
	if err != nil {
		return nil, err
	}
	corrupt, err := loadImage(b, ps.corrupt[i])
	if err != nil {
		return nil, err
	}
	return j.run(clean, corrupt, ps.metric[i])
}
