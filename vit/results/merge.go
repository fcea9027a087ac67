package results

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Merge joins the shards of one run into the results folder out. Shards must
// have the same identity but for their shard index and Total; together they
// must hold every chunk of the whole run exactly once, each intact (the rows
// and checksums its marker records). Parts are linked (or copied)
// into out, which is then finished. Rerunning an interrupted merge resumes it.
func Merge(out string, shards []string) error {
	if len(shards) == 0 {
		return errors.New("merge: no shards given")
	}
	absOut, err := filepath.Abs(out)
	if err != nil {
		return err
	}
	var first Manifest
	total := 0
	owner := map[int]string{} // chunk -> shard dir
	records := map[int]chunkRecord{}
	for i, dir := range shards {
		if abs, err := filepath.Abs(dir); err == nil && abs == absOut {
			return fmt.Errorf("merge: output %s is also a shard", out)
		}
		m, err := ReadManifest(dir)
		if err != nil {
			return fmt.Errorf("merge: shard %s: %w", dir, err)
		}
		if i == 0 {
			first = m
		} else if err := madeWith(runDiff(first, m, false)); err != nil {
			return fmt.Errorf("merge: %s and %s are not shards of one run: %s %v", shards[0], dir, shards[0], err)
		}
		total += m.Total
		done, err := doneChunks(dir)
		if err != nil {
			return err
		}
		for _, c := range sortedChunks(done) {
			if prev, dup := owner[c]; dup {
				return fmt.Errorf("merge: chunk %d is in both %s and %s", c, prev, dir)
			}
			owner[c] = dir
			rec, err := verifyChunk(dir, m.Format, c)
			if errors.Is(err, errUnverified) {
				return fmt.Errorf("merge: shard %s: %w", dir, err)
			} else if err != nil {
				return fmt.Errorf("merge: shard %s: %v: rerun that shard's command to recompute it", dir, err)
			}
			records[c] = rec
		}
	}
	if first.ChunkSize <= 0 {
		return fmt.Errorf("merge: shard %s: manifest has chunk size %d", shards[0], first.ChunkSize)
	}
	nchunks := (total + first.ChunkSize - 1) / first.ChunkSize
	var missing []string
	for c := range nchunks {
		if _, ok := owner[c]; !ok {
			missing = append(missing, fmt.Sprint(c))
		}
	}
	if len(missing) > 0 {
		if len(missing) > 10 {
			missing = append(missing[:10], "...")
		}
		return fmt.Errorf("merge: %d images in %d chunks, but no shard has chunk %s (a shard is unfinished or missing)", total, nchunks, strings.Join(missing, ", "))
	}
	for c, dir := range owner {
		if c >= nchunks {
			return fmt.Errorf("merge: shard %s has chunk %d, beyond the %d chunks of %d images", dir, c, nchunks, total)
		}
	}

	m := first
	m.Shard = ""
	m.Total = total
	m.Created = time.Now().UTC()
	m.MergedFrom = shards
	run, err := Create(out, m, first.Format)
	if err != nil {
		return err
	}
	defer run.Close()
	for c := range nchunks {
		if run.ChunkDone(c) {
			continue
		}
		if err := run.copyChunk(owner[c], c, records[c]); err != nil {
			return err
		}
		if err := run.CommitChunk(c); err != nil {
			return err
		}
	}
	return run.Finish()
}

// copyChunk brings every table's part of chunk from the results folder src,
// whose marker recorded rec (verified), and marks them for the commit.
func (r *Run) copyChunk(src string, chunk int, rec chunkRecord) error {
	for t, part := range rec.Tables {
		from := partPath(src, t, chunk, r.m.Format)
		if err := os.MkdirAll(filepath.Join(r.dir, chunksDir, t), 0o755); err != nil {
			return err
		}
		if err := os.Remove(finalPath(r.dir, t, r.m.Format)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		if err := linkOrCopyAtomic(from, partPath(r.dir, t, chunk, r.m.Format)); err != nil {
			return err
		}
		r.addPending(chunk, t, part)
	}
	return r.copyChunkFiles(src, chunk, rec)
}
