// Package batch runs the explainability experiments over datasets into
// vitlens results folders: the maps and overlays of many images (Explainer),
// and the token-removal test (Removal, summarised by SummarizeRemoval).
package batch

import (
	"errors"
	"fmt"
	"io"

	"vitlens/vit"
	"vitlens/vit/bundle"
	"vitlens/vit/dataset"
	"vitlens/vit/experiment"
	"vitlens/vit/explain"
	"vitlens/vit/results"
)

// Removal runs the test over a dataset into a results folder, chunk
// by chunk (resumable and shardable like the other experiments).
type Removal struct {
	Bundle           *bundle.Bundle
	Data             dataset.Dataset // already selected
	Out              *results.Run
	Spec             explain.RemovalSpec
	Shard, NumShards int
	Progress         func(done, total int)
	Log              io.Writer
}

// Run processes every chunk not yet committed, then finishes the tables.
// RemovalTables are the tables a removal run writes, for the manifest.
func RemovalTables() []results.Table {
	return []results.Table{results.TableOf[explain.RemovalRow]("removal"), results.TableOf[experiment.SkipRow]("skipped")}
}

func (r *Removal) Run() (experiment.Stats, error) {
	if err := r.Spec.Validate(r.Bundle.Model.Config); err != nil {
		return experiment.Stats{}, err
	}
	return experiment.RunChunks(r.Out, r.Data.Len(), r.Shard, r.NumShards, r.Progress, r.runChunk)
}

func (r *Removal) runChunk(k, lo, hi int) (images, skipped int, err error) {
	m := r.Bundle.Model
	perImage := make([][]explain.RemovalRow, hi-lo)
	errs := make([]error, hi-lo)
	vit.Parallel(lo, hi, func(i int) {
		item := r.Data.Item(i)
		pixels, err := dataset.Input(r.Data, i, r.Bundle.Preset, m.Config.ImageSize)
		if err != nil {
			errs[i-lo] = err
			return
		}
		perImage[i-lo], errs[i-lo] = explain.RemoveImage(m, pixels, item.Index, item.Label, r.Spec)
	})
	var rows []explain.RemovalRow
	var skips []experiment.SkipRow
	for i, e := range errs {
		item := r.Data.Item(lo + i)
		if e != nil {
			// A missing probe rank means the folders do not match: stop.
			if errors.Is(e, explain.ErrNoProbeRanks) {
				return 0, 0, e
			}
			skips = append(skips, experiment.SkipRow{Image: int32(item.Index), ID: item.ID, Reason: e.Error()})
			if r.Log != nil {
				fmt.Fprintf(r.Log, "skipped image %d: %v\n", item.Index, e)
			}
			continue
		}
		rows = append(rows, perImage[i]...)
	}
	if err := results.WriteChunk(r.Out, "removal", k, rows); err != nil {
		return 0, 0, err
	}
	if err := results.WriteChunk(r.Out, "skipped", k, experiment.WithIndexSkips(r.Data, k, skips)); err != nil {
		return 0, 0, err
	}
	return hi - lo - len(skips), len(skips), r.Out.CommitChunk(k)
}
