// Package batch runs the explainability experiments over datasets into
// vitlens results folders: the maps and overlays of many images (Explainer),
// and the token-removal test (Removal, summarised by SummarizeRemoval).
package batch

import (
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"time"

	"vitlens/vit/bundle"
	"vitlens/vit/dataset"
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

// Stats summarises a Run call.
type Stats struct {
	Images, Skipped, ResumedChunks int
	Elapsed                        time.Duration
}

// Run processes every chunk not yet committed, then finishes the tables.
func (r *Removal) Run() (Stats, error) {
	var st Stats
	start := time.Now()
	if err := r.Spec.Validate(r.Bundle.Model.Config); err != nil {
		return st, err
	}
	size := r.Out.Manifest().ChunkSize
	n := r.Data.Len()
	chunks := (n + size - 1) / size
	var mine []int
	for k := 0; k < chunks; k++ {
		if k%max(r.NumShards, 1) == r.Shard {
			mine = append(mine, k)
		}
	}
	total, done := 0, 0
	for _, k := range mine {
		total += min(size, n-k*size)
		if r.Out.ChunkDone(k) {
			st.ResumedChunks++
			done += min(size, n-k*size)
		}
	}
	r.progress(done, total)
	for _, k := range mine {
		if r.Out.ChunkDone(k) {
			continue
		}
		lo, hi := k*size, min((k+1)*size, n)
		imgs, skipped, err := r.runChunk(k, lo, hi)
		if err != nil {
			return st, err
		}
		st.Images += imgs
		st.Skipped += skipped
		done += hi - lo
		r.progress(done, total)
	}
	st.Elapsed = time.Since(start)
	if r.NumShards <= 1 {
		return st, r.Out.Finish()
	}
	return st, nil
}

func (r *Removal) progress(done, total int) {
	if r.Progress != nil {
		r.Progress(done, total)
	}
}

// SkipRow records an image left out and why: table "skipped".
type SkipRow struct {
	Image  int32  `parquet:"image"`
	ID     string `parquet:"id"`
	Reason string `parquet:"reason"`
}

func (r *Removal) runChunk(k, lo, hi int) (images, skipped int, err error) {
	m := r.Bundle.Model
	perImage := make([][]explain.RemovalRow, hi-lo)
	errs := make([]error, hi-lo)
	var wg sync.WaitGroup
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	for i := lo; i < hi; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			item := r.Data.Item(i)
			img, err := r.Data.Image(i)
			if err != nil {
				errs[i-lo] = err
				return
			}
			pixels, err := r.Bundle.Preset.Apply(img, m.Config.ImageSize)
			if err != nil {
				errs[i-lo] = fmt.Errorf("%s: %w", item.ID, err)
				return
			}
			perImage[i-lo], errs[i-lo] = explain.RemoveImage(m, pixels, item.Index, item.Label, r.Spec)
		}()
	}
	wg.Wait()
	var rows []explain.RemovalRow
	var skips []SkipRow
	for i, e := range errs {
		item := r.Data.Item(lo + i)
		if e != nil {
			// A missing probe rank means the folders do not match: stop.
			if errors.Is(e, explain.ErrNoProbeRanks) {
				return 0, 0, e
			}
			skips = append(skips, SkipRow{Image: int32(item.Index), ID: item.ID, Reason: e.Error()})
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
	if err := results.WriteChunk(r.Out, "skipped", k, skips); err != nil {
		return 0, 0, err
	}
	return hi - lo - len(skips), len(skips), r.Out.CommitChunk(k)
}
