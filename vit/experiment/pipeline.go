package experiment

import (
	"fmt"
	"sync"
	"time"

	"vitlens/vit"
	"vitlens/vit/lens"
	"vitlens/vit/memory"
	"vitlens/vit/results"
)

// A run is a pipeline of three stages, each feeding the next in order:
// decoding chunks (chunkSource, on CPU threads ahead of the rest), backend
// calls in flight (batchPipe; the GPU computes one while the next is staged
// and the previous one's rows are built), and committing chunks in order.
// Every stage keeps the order of the selection, so the rows and the chunk
// files are those of a run that does one thing at a time, and a chunk is
// committed only once all its rows are written: resuming is unchanged.

// Timings is where a Runner's wall time went, stage by stage (`--timings`).
// Decoding runs on its own goroutine when chunks are decoded ahead, so it
// overlaps the other stages; StageDecodeWait is the part the pipeline waited for.
type Timings [numStages]time.Duration

// Stage is one stage of Timings.
type Stage int

const (
	StageDecode     Stage = iota // decoding and preprocessing the images
	StageDecodeWait              // the pipeline waiting for a decoded chunk
	StageBackend                 // waiting on backend calls (on the CPU: the forward and the lens)
	StageRows                    // building the rows from the backend's results
	StageWrite                   // writing and committing the chunks
	numStages
)

// StageNames name the stages of Timings, in order.
var StageNames = [numStages]string{"decoding", "waiting for decoding", "backend", "building rows", "writing chunks"}

// add adds the time since start to stage when timings are asked for.
func (t *Timings) add(stage Stage, start time.Time) {
	if t != nil {
		t[stage] += time.Since(start)
	}
}

// decodedChunk is chunk k's images [lo, hi), decoded and preprocessed.
type decodedChunk struct {
	k, lo, hi int
	items     []loaded
}

// chunkSource hands out the chunks of todo in order; with ahead > 0 a
// goroutine decodes up to ahead chunks before they are asked for.
type chunkSource struct {
	r    *Runner
	todo []int
	next int // inline only: index into todo
	ch   chan decodedChunk
	quit chan struct{}
	wg   sync.WaitGroup
}

func (r *Runner) chunkSource(todo []int, ahead int) *chunkSource {
	s := &chunkSource{r: r, todo: todo}
	if ahead <= 0 {
		return s
	}
	s.ch = make(chan decodedChunk, ahead-1) // plus the one being handed over
	s.quit = make(chan struct{})
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(s.ch)
		for _, k := range todo {
			c := r.decodeChunk(k)
			select {
			case s.ch <- c:
			case <-s.quit:
				return
			}
		}
	}()
	return s
}

func (r *Runner) decodeChunk(k int) decodedChunk {
	defer r.Timings.add(StageDecode, time.Now())
	lo, hi := chunkBounds(k, r.Out.Manifest().ChunkSize, r.Data.Len())
	return decodedChunk{k: k, lo: lo, hi: hi, items: r.load(lo, hi)}
}

// take returns the next chunk, false when every chunk was handed out.
func (s *chunkSource) take() (decodedChunk, bool) {
	if s.ch == nil {
		if s.next == len(s.todo) {
			return decodedChunk{}, false
		}
		s.next++
		return s.r.decodeChunk(s.todo[s.next-1]), true
	}
	defer s.r.Timings.add(StageDecodeWait, time.Now())
	c, ok := <-s.ch
	return c, ok
}

// stop ends the decoding goroutine and waits for it (it reads the dataset,
// which the caller may close next).
func (s *chunkSource) stop() {
	if s.quit != nil {
		close(s.quit)
		s.wg.Wait()
		s.quit = nil
	}
}

// chunkRows collects one chunk's rows while its batches come back.
type chunkRows struct {
	k, lo, hi int
	left      int // batches not yet collected
	images    int
	ranks     []RankRow
	imgRows   []ImageRow
	skips     []SkipRow
	mems      []MemoryRow
}

// startedBatch is a backend call in flight.
type startedBatch struct {
	rows  *chunkRows
	batch []loaded
	req   lens.Request
	call  lens.Pending
}

// batchPipe keeps up to depth backend calls in flight, across chunk
// boundaries, and collects them in the order they were started.
type batchPipe struct {
	r        *Runner
	src      *chunkSource
	blocks   []*memory.Block
	depth    int
	toStart  []startedBatch // cut, not yet started
	inflight []startedBatch
	open     []*chunkRows // chunks taken from src, not yet committed, in order
}

// runChunk is RunChunks' work for chunk k: it drives the pipeline until k,
// the oldest open chunk, has all its rows, then writes and commits it.
func (p *batchPipe) runChunk(k int) (images, skipped int, err error) {
	for {
		if len(p.open) > 0 && p.open[0].left == 0 {
			c := p.open[0]
			if c.k != k {
				return 0, 0, fmt.Errorf("internal error: chunk %d finished while chunk %d was expected", c.k, k)
			}
			p.open = p.open[1:]
			return c.images, len(c.skips), p.r.commit(c)
		}
		if len(p.inflight) < p.depth {
			more, err := p.startNext()
			if err != nil {
				return 0, 0, err
			}
			if more {
				continue
			}
		}
		if len(p.inflight) == 0 {
			return 0, 0, fmt.Errorf("internal error: chunk %d was never decoded", k)
		}
		if err := p.collectOldest(); err != nil {
			return 0, 0, err
		}
	}
}

// startNext starts the next cut batch, taking (and cutting) the next chunk
// when none is left; false when there is nothing more to take.
func (p *batchPipe) startNext() (bool, error) {
	if len(p.toStart) == 0 {
		c, ok := p.src.take()
		if !ok {
			return false, nil
		}
		p.cut(c)
		return true, nil
	}
	b := p.toStart[0]
	p.toStart = p.toStart[1:]
	pixels := make([]*vit.Tensor, len(b.batch))
	for i, l := range b.batch {
		pixels[i] = l.pixels
	}
	call, err := lens.Start(p.r.Backend, pixels, b.req)
	if err != nil {
		return false, b.rows.fail(err)
	}
	b.call = call
	p.inflight = append(p.inflight, b)
	return true, nil
}

// cut opens a chunk's rows, records its skipped images and queues its
// batches of r.Batch decoded images.
func (p *batchPipe) cut(c decodedChunk) {
	r := p.r
	rows := &chunkRows{k: c.k, lo: c.lo, hi: c.hi}
	p.open = append(p.open, rows)
	var ok []loaded
	for _, l := range c.items {
		if l.err != nil {
			rows.skips = append(rows.skips, SkipRow{Image: int32(l.item.Index), ID: l.item.ID, Reason: l.err.Error()})
			if r.Log != nil {
				fmt.Fprintf(r.Log, "skipped image %d: %v\n", l.item.Index, l.err)
			}
			continue
		}
		ok = append(ok, l)
	}
	for b0 := 0; b0 < len(ok); b0 += r.Batch {
		batch := ok[b0:min(b0+r.Batch, len(ok))]
		p.toStart = append(p.toStart, startedBatch{rows: rows, batch: batch, req: r.request(batch)})
		rows.left++
	}
}

func (c *chunkRows) fail(err error) error {
	return fmt.Errorf("chunk %d (images %d..%d): %w", c.k, c.lo, c.hi-1, err)
}

// collectOldest waits on the oldest call in flight and appends its rows.
func (p *batchPipe) collectOldest() error {
	r := p.r
	b := p.inflight[0]
	p.inflight = p.inflight[1:]
	start := time.Now()
	res, err := b.call.Wait()
	r.Timings.add(StageBackend, start)
	if err != nil {
		return b.rows.fail(err)
	}
	defer r.Timings.add(StageRows, time.Now())
	c := b.rows
	for i, l := range b.batch {
		out := res[i]
		pred := lens.Argmax(out.Logits)
		c.imgRows = append(c.imgRows, ImageRow{Image: int32(l.item.Index), ID: l.item.ID, Label: int32(l.item.Label),
			Pred: int32(pred), Correct: pred == l.item.Label, Tokens: int32(len(out.Tokens))})
		c.ranks = appendRanks(c.ranks, l, out, b.req.Sites, r.Bundle.Model.Config)
		if r.Spec.Kind == Memories {
			rows, err := r.memoryRows(l, out, p.blocks, pred == l.item.Label)
			if err != nil {
				return err
			}
			c.mems = append(c.mems, rows...)
		}
	}
	c.images += len(b.batch)
	c.left--
	return nil
}

// drain waits on the calls still in flight after an error, dropping their
// results, so the backend holds no half-collected work.
func (p *batchPipe) drain() {
	for _, b := range p.inflight {
		b.call.Wait()
	}
	p.inflight = nil
}

// commit writes a chunk's tables and marks it done.
func (r *Runner) commit(c *chunkRows) error {
	defer r.Timings.add(StageWrite, time.Now())
	k := c.k
	if err := results.WriteChunk(r.Out, "ranks", k, c.ranks); err != nil {
		return err
	}
	if err := results.WriteChunk(r.Out, "images", k, c.imgRows); err != nil {
		return err
	}
	if err := results.WriteChunk(r.Out, "skipped", k, WithIndexSkips(r.Data, k, c.skips)); err != nil {
		return err
	}
	if r.Spec.Kind == Memories {
		if err := results.WriteChunk(r.Out, "memories", k, c.mems); err != nil {
			return err
		}
		if k == 0 { // weights only: it travels with chunk 0, which shard 0 owns
			if err := r.writeClassValue(); err != nil {
				return err
			}
			if err := r.writeValueClasses(); err != nil {
				return err
			}
		}
	}
	return r.Out.CommitChunk(k)
}
