// Package experiment runs the paper's experiments over a dataset as
// streaming, resumable batch jobs: images go through the backend chunk by
// chunk, and each chunk's rows land atomically in a results folder.
package experiment

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"

	"vitlens/vit"
	"vitlens/vit/bundle"
	"vitlens/vit/dataset"
	"vitlens/vit/lens"
	"vitlens/vit/memory"
	"vitlens/vit/results"
)

// Kind names an experiment (a `vitlens` subcommand).
type Kind string

const (
	Extract       Kind = "extract"        // extractor.py
	PerturbAttn   Kind = "perturb-attn"   // attn_perturbation.py
	PerturbTokens Kind = "perturb-tokens" // tokens_perturbation.py
	Memories      Kind = "memories"       // memories.py
)

// Drop modes of the token perturbation.
const (
	DropContext    = "context"     // keep [CLS] (and any distillation token or registers) and class-labelled tokens
	DropClassLabel = "class_label" // keep [CLS] (and any distillation token or registers) and context tokens
)

// Spec says what an experiment computes.
type Spec struct {
	Kind  Kind
	Sites []vit.Site // extract: sites to read out (default all)
	TopK  int        // 5
	Edit  vit.AttnEdit
	Drop  string       // perturb-tokens
	Layer memory.Layer // memories
	Seed  uint64       // random classes of the memory baseline
	// Lens, when set, reads the residual sites through these translators
	// (the tuned lens); the manifest records the file's hash.
	Lens *lens.Translators
	// Masks reads segmentation masks into the patch_label column when the
	// dataset has them (needed for the class-vs-context analysis).
	Masks bool
}

// Params are the spec fields that change results, for the manifest.
func (s Spec) Params() map[string]string {
	var sites []string
	for _, x := range s.Sites {
		sites = append(sites, x.String())
	}
	p := map[string]string{"sites": strings.Join(sites, ","), "topk": fmt.Sprint(s.TopK)}
	switch s.Kind {
	case PerturbAttn:
		p["mode"] = string(s.Edit)
	case PerturbTokens:
		p["drop"] = s.Drop
	case Memories:
		p["layer"] = string(s.Layer)
		p["seed"] = fmt.Sprint(s.Seed)
	}
	if s.Masks {
		p["masks"] = "true"
	}
	return p
}

// Tables are the tables the experiment writes, for the manifest.
func (s Spec) Tables() []results.Table {
	t := []results.Table{results.TableOf[RankRow]("ranks"), results.TableOf[ImageRow]("images"), results.TableOf[SkipRow]("skipped")}
	if s.Kind == Memories {
		t = append(t, results.TableOf[MemoryRow]("memories"), results.TableOf[ClassValueRow]("class_value"), results.TableOf[ValueClassRow]("value_classes"))
	}
	return t
}

// Runner executes one experiment.
type Runner struct {
	Bundle  *bundle.Bundle
	Backend lens.Backend
	Data    dataset.Dataset // already selected (limit, classes); not sharded
	Out     *results.Run
	Spec    Spec
	Batch   int // images per backend call
	// Shard i of n processes chunks k with k % n == i, so shards of one run
	// never write the same chunk and merge cleanly.
	Shard, NumShards int
	Progress         func(done, total int) // optional
	Log              io.Writer             // notes about skipped images
	// DecodeAhead is how many chunks are decoded on other CPU threads
	// before they are needed (0: each when it is needed).
	DecodeAhead int
	// InFlight is how many backend calls are started before the oldest is
	// collected (0 or 1: one at a time). On the GPU backend, 2 keeps the
	// device busy while the next batch is staged and the last one's rows are
	// built. Neither changes a row.
	InFlight int
	// Timings, when set, hears where the run's wall time went (`--timings`).
	Timings *Timings
}

// Run processes every chunk not yet committed, then finishes the tables.
func (r *Runner) Run() (Stats, error) {
	if err := r.Validate(); err != nil {
		return Stats{}, err
	}
	var blocks []*memory.Block
	if r.Spec.Kind == Memories {
		for b := range r.Bundle.Model.Blocks {
			blocks = append(blocks, memory.NewBlock(r.Bundle.Model, b, r.Spec.Layer))
		}
	}
	src := r.chunkSource(PendingChunks(r.Out, r.Data.Len(), r.Shard, r.NumShards), r.DecodeAhead)
	defer src.stop()
	pipe := &batchPipe{r: r, src: src, blocks: blocks, depth: max(1, r.InFlight)}
	defer pipe.drain()
	return RunChunks(r.Out, r.Data.Len(), r.Shard, r.NumShards, r.Progress, func(k, _, _ int) (int, int, error) {
		return pipe.runChunk(k)
	})
}

// Validate checks the spec against the model and the dataset; Run calls it
// first, and a command calls it before it creates the results folder.
func (r *Runner) Validate() error {
	s := r.Spec
	c := r.Bundle.Model.Config
	if s.TopK != 5 {
		return fmt.Errorf("top-k must be 5 (the ranks table has columns top1..top5), got %d", s.TopK)
	}
	if len(s.Sites) == 0 {
		return errors.New("no sites to read out")
	}
	if len(r.Data.Classes()) > c.Classes {
		return fmt.Errorf("dataset %s has %d classes, the model only %d", r.Data.Name(), len(r.Data.Classes()), c.Classes)
	}
	switch s.Kind {
	case Memories:
		if s.Lens != nil {
			return errors.New("--lens does not apply to memories: its readouts are of the attn and mlp sublayer outputs, which keep the plain lens (docs/method.md)")
		}
	case Extract:
	case PerturbAttn:
		if s.Edit == vit.EditNone {
			return errors.New("perturb-attn needs a mode (self_only or no_cls)")
		}
	case PerturbTokens:
		if s.Drop != DropContext && s.Drop != DropClassLabel {
			return fmt.Errorf("unknown drop mode %q (want %s or %s)", s.Drop, DropContext, DropClassLabel)
		}
		if !c.ClassToken {
			return errors.New("perturb-tokens keeps [CLS]; this model has none")
		}
	default:
		return fmt.Errorf("unknown experiment %q", s.Kind)
	}
	if r.Batch < 1 {
		return errors.New("batch size must be at least 1")
	}
	return nil
}

// loaded is one preprocessed image of a chunk.
type loaded struct {
	item   dataset.Item
	pixels *vit.Tensor
	labels []uint8 // patch labels, nil when unknown
	keep   []int   // perturb-tokens: kept positions
	err    error   // why the image is skipped
}

// load decodes and preprocesses images lo..hi-1 in parallel.
func (r *Runner) load(lo, hi int) []loaded {
	out := make([]loaded, hi-lo)
	c := r.Bundle.Model.Config
	needMask := r.Spec.Kind == PerturbTokens || r.Spec.Masks
	vit.Parallel(lo, hi, func(i int) {
		l := &out[i-lo]
		l.item = r.Data.Item(i)
		var err error
		if l.pixels, err = dataset.Input(r.Data, i, r.Bundle.Preset, c.ImageSize); err != nil {
			l.err = err
			return
		}
		if needMask {
			labels, ok, err := r.Data.PatchLabels(i, c.GridSize())
			switch {
			case err != nil:
				l.err = err
			case !ok && r.Spec.Kind == PerturbTokens:
				l.err = fmt.Errorf("dataset %s has no segmentation masks", r.Data.Name())
			case ok:
				l.labels = labels
			}
		}
		if r.Spec.Kind == PerturbTokens && l.err == nil {
			l.keep = keptTokens(l.labels, r.Spec.Drop, c.FirstImageToken())
		}
	})
	return out
}

// keptTokens lists [CLS], the distillation token or registers (the first
// `first` tokens, never dropped) and the image tokens that survive dropping.
func keptTokens(labels []uint8, drop string, first int) []int {
	var keep []int
	for t := range first {
		keep = append(keep, t)
	}
	want := uint8(1) // DropContext keeps class-labelled tokens
	if drop == DropClassLabel {
		want = 0
	}
	for p, l := range labels {
		if l == want {
			keep = append(keep, first+p)
		}
	}
	return keep
}

func (r *Runner) request(batch []loaded) lens.Request {
	req := lens.Request{Sites: r.Spec.Sites, TopK: r.Spec.TopK, Edit: r.Spec.Edit, Targets: make([]int, len(batch)), Lens: r.Spec.Lens}
	for i, l := range batch {
		req.Targets[i] = l.item.Label
	}
	if r.Spec.Kind == PerturbTokens {
		req.Keep = make([][]int, len(batch))
		for i, l := range batch {
			req.Keep[i] = l.keep
		}
	}
	if r.Spec.Kind == Memories {
		if r.Spec.Layer == memory.MLP {
			req.Taps.FC1 = true
		} else {
			req.Taps.Heads = true
		}
	}
	return req
}

func appendRanks(rows []RankRow, l loaded, out *lens.Result, sites []vit.Site, c vit.Config) []RankRow {
	for _, s := range sites {
		for b := 0; b < c.Depth; b++ {
			ro := out.At(s, b)
			for p, tok := range out.Tokens {
				top := ro.TopOf(p)
				rows = append(rows, RankRow{Image: int32(l.item.Index), Label: int32(l.item.Label), Block: int32(b),
					Site: s.String(), Token: int32(tok), PatchLabel: patchLabel(l.labels, tok, c),
					Rank: ro.Rank[p], Top1: top[0], Top2: top[1], Top3: top[2], Top4: top[3], Top5: top[4],
					TargetLogit: ro.TargetLogit[p], Entropy: ro.Entropy[p], KLLast: ro.KL[p]})
			}
		}
	}
	return rows
}

// patchLabel returns the mask label of an original token index, -1 for
// [CLS] or when unknown.
func patchLabel(labels []uint8, tok int, c vit.Config) int32 {
	p := tok - c.FirstImageToken()
	if labels == nil || p < 0 || p >= len(labels) {
		return -1
	}
	return int32(labels[p])
}

// randomClass is the seeded stand-in for the original's unseeded random
// class per concept (the key-value agreement baseline).
func randomClass(seed uint64, label, classes int) int {
	rng := rand.New(rand.NewPCG(seed, uint64(label)))
	return rng.IntN(classes)
}

func (r *Runner) memoryRows(l loaded, out *lens.Result, blocks []*memory.Block, correct bool) ([]MemoryRow, error) {
	var rows []MemoryRow
	site := vit.SiteMLP
	if r.Spec.Layer == memory.Attn {
		site = vit.SiteAttn
	}
	rc := randomClass(r.Spec.Seed, l.item.Label, r.Bundle.Model.Config.Classes)
	for b, blk := range blocks {
		coef, err := memory.Coefficients(out.Trace, b, r.Spec.Layer)
		if err != nil {
			return nil, err
		}
		top := memory.TokenTop(coef)
		ro := out.At(site, b)
		for p, tok := range out.Tokens {
			tt := top[p*memory.TopK : (p+1)*memory.TopK]
			rows = append(rows, MemoryRow{Image: int32(l.item.Index), Label: int32(l.item.Label), Block: int32(b),
				Layer: string(r.Spec.Layer), Token: int32(tok), Correct: correct,
				Agree: blk.Agrees(tt, l.item.Label), AgreeRandom: blk.Agrees(tt, rc),
				Composes: blk.Composes(tt, ro.TopOf(p)[0]),
				Mem1:     tt[0], Mem2: tt[1], Mem3: tt[2], Mem4: tt[3], Mem5: tt[4]})
		}
	}
	return rows, nil
}

// writeClassValue stores the weights-only class-value agreement of every
// block, with a seeded random-init model of the same architecture as the
// baseline, as chunk 0's part of table "class_value".
func (r *Runner) writeClassValue() error {
	m := r.Bundle.Model
	random, err := vit.NewRandom(m.Config, r.Spec.Seed)
	if err != nil {
		return err
	}
	var rows []ClassValueRow
	for b := range m.Blocks {
		got := memory.ClassValueAgreement(m, b, r.Spec.Layer)
		base := memory.ClassValueAgreement(random, b, r.Spec.Layer)
		for c := range got {
			rows = append(rows, ClassValueRow{Block: int32(b), Layer: string(r.Spec.Layer), Class: int32(c), MaxCos: got[c], RandomMaxCos: base[c]})
		}
	}
	return results.WriteChunk(r.Out, "class_value", 0, rows)
}

// writeValueClasses stores, for every memory of every block, the classes its
// value vector promotes most (the original's interpretable value vectors),
// as chunk 0's part of table "value_classes".
func (r *Runner) writeValueClasses() error {
	m := r.Bundle.Model
	var rows []ValueClassRow
	for b := range m.Blocks {
		for j, top := range memory.ValueClasses(m, b, r.Spec.Layer) {
			rows = append(rows, ValueClassRow{Block: int32(b), Layer: string(r.Spec.Layer), Memory: int32(j),
				Class1: top.Classes[0], Class2: top.Classes[1], Class3: top.Classes[2], Class4: top.Classes[3], Class5: top.Classes[4],
				Logit1: top.Logits[0]})
		}
	}
	return results.WriteChunk(r.Out, "value_classes", 0, rows)
}
