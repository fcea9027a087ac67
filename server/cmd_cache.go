package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"vitlens/vit"
	"vitlens/vit/activations"
	"vitlens/vit/activations/cacherun"
	"vitlens/vit/dataset"
	"vitlens/vit/experiment"
	"vitlens/vit/results"
)

func init() {
	register("cache", "stream activations at named hooks to sharded, resumable safetensors files", runCache)
}

// cacheImageRow is a row of a cache run's images table: which image is row
// Row of chunk Chunk's tensors.
type cacheImageRow struct {
	Image int32  `parquet:"image"`
	ID    string `parquet:"id"`
	Label int32  `parquet:"label"`
	Chunk int32  `parquet:"chunk"`
	Row   int32  `parquet:"row"`
}

func runCache(args []string, stdout io.Writer) error {
	fs := newFlags("cache", "[IMAGE...]")
	var rf runFlags
	rf.register(fs)
	hookPat := fs.String("hooks", "blocks.*.hook_resid_post", "hooks to cache: names or patterns with *, comma-separated (vitlens hooks lists them)")
	tokens := fs.String("tokens", string(activations.AllTokens), "sequence positions kept: all, cls or patches")
	dtypeFlag := fs.String("dtype", string(activations.F32), "stored numbers: f32 or f16")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	dtype, err := activations.ParseDType(*dtypeFlag)
	if err != nil {
		return err
	}
	files, sel, fset := fileArgs(fs)
	o, err := rf.openCPUInputs("cache", files, sel, os.Stderr)
	if err != nil {
		return err
	}
	c := o.bundle.Model.Config
	hooks, err := c.MatchHooks(*hookPat)
	if err != nil {
		return fmt.Errorf("-hooks: %w", err)
	}
	positions, err := activations.Tokens(*tokens).Positions(c)
	if err != nil {
		return err
	}
	names := make([]string, len(hooks))
	for i, h := range hooks {
		names[i] = h.Name()
	}
	params := map[string]string{"hooks": strings.Join(names, ","), "tokens": *tokens, "dtype": string(dtype)}
	if err := o.create("cache", params, []results.Table{results.TableOf[cacheImageRow]("images"), results.TableOf[experiment.SkipRow]("skipped")}, append([]string{"cache"}, args...), "cpu", os.Stderr); err != nil {
		return err
	}
	defer o.close()
	fset.classes = o.bundle.Classes
	var progress func(done, total int)
	if !rf.quiet {
		progress = newProgress(os.Stderr, "cache")
	}
	meta := map[string]string{"hooks": params["hooks"], "tokens": *tokens, "model": o.bundle.Info.Path}
	st, err := experiment.RunChunks(o.out, o.data.Len(), o.shard, o.numShards, progress, func(k, lo, hi int) (int, int, error) {
		return cacheChunk(o, hooks, positions, dtype, meta, k, lo, hi)
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "cache: %d images (%d skipped, %d chunks resumed) -> %s (tensors in %s/%s/, images table)\n",
		st.Images, st.Skipped, st.ResumedChunks, o.out.Dir(), "files", cacherun.FileKind)
	return nil
}

// cacheChunk runs images [lo, hi) with cache hooks and commits their
// activations as one safetensors file plus their rows of the images table.
func cacheChunk(o *openedRun, hooks []vit.Hook, positions []int, dtype activations.DType, meta map[string]string, k, lo, hi int) (int, int, error) {
	m := o.bundle.Model
	type one struct {
		acts map[vit.Hook]*vit.Tensor
		err  error
	}
	got := make([]one, hi-lo)
	vit.Parallel(lo, hi, func(i int) {
		x, err := dataset.Input(o.data, i, o.bundle.Preset, m.Config.ImageSize)
		if err != nil {
			got[i-lo].err = err
			return
		}
		fns, cache := vit.CacheHooks(hooks)
		if _, err := m.Forward(x, vit.Options{Hooks: fns}); err != nil {
			got[i-lo].err = err
			return
		}
		sel := map[vit.Hook]*vit.Tensor{}
		for h, a := range cache {
			sel[h] = activations.Select(h, a, positions)
		}
		got[i-lo].acts = sel
	})
	batch := activations.NewBatch(hooks)
	var rows []cacheImageRow
	var skips []experiment.SkipRow
	for i, g := range got {
		item := o.data.Item(lo + i)
		if g.err != nil {
			skips = append(skips, experiment.SkipRow{Image: int32(item.Index), ID: item.ID, Reason: g.err.Error()})
			fmt.Fprintf(os.Stderr, "skipped image %d: %v\n", item.Index, g.err)
			continue
		}
		if err := batch.Add(item.Index, item.ID, g.acts); err != nil {
			return 0, 0, err
		}
		rows = append(rows, cacheImageRow{Image: int32(item.Index), ID: item.ID, Label: int32(item.Label), Chunk: int32(k), Row: int32(len(rows))})
	}
	data, err := batch.Safetensors(dtype, meta)
	if err != nil {
		return 0, 0, err
	}
	if err := o.out.WriteChunkFile(cacherun.FileKind, ".safetensors", k, int64(len(rows)), func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	}); err != nil {
		return 0, 0, err
	}
	for _, err := range []error{
		results.WriteChunk(o.out, "images", k, rows),
		results.WriteChunk(o.out, "skipped", k, experiment.WithIndexSkips(o.data, k, skips)),
	} {
		if err != nil {
			return 0, 0, err
		}
	}
	return len(rows), len(skips), o.out.CommitChunk(k)
}
