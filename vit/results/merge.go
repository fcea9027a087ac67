package results

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"
)

// Merge joins the shards of one run into the results folder out (each a
// folder or an s3:// URL, in any mix). Shards must
// have the same identity but for their shard index and Total; together they
// must hold every chunk of the whole run exactly once, each intact (the rows
// and checksums its marker records). Parts are linked (or copied;
// on the server within one S3 endpoint) into out, which is then finished. Rerunning an interrupted merge resumes it.
func Merge(out string, shards []string) error {
	if len(shards) == 0 {
		return errors.New("merge: no shards given")
	}
	absOut := sameFolderKey(out)
	var first Manifest
	var schema []Table // the first shard's, or of the first that recorded one
	firstTables, firstComplete := []Table(nil), false
	total := 0
	owner := map[int]string{} // chunk -> shard dir
	stores := map[string]store{}
	records := map[int]chunkRecord{}
	for i, dir := range shards {
		if sameFolderKey(dir) == absOut {
			return fmt.Errorf("merge: output %s is also a shard", out)
		}
		st, err := openStore(dir)
		if err != nil {
			return fmt.Errorf("merge: shard %s: %w", dir, err)
		}
		stores[dir] = st
		m, err := readManifest(st)
		if err != nil {
			return fmt.Errorf("merge: shard %s: %w", dir, err)
		}
		tables, complete, err := folderSchema(st, m)
		if err != nil {
			return fmt.Errorf("merge: shard %s: %w", dir, err)
		}
		if i == 0 {
			first, firstTables, firstComplete = m, tables, complete
		} else if err := madeWith(runDiff(first, m, false)); err != nil {
			return fmt.Errorf("merge: %s and %s are not shards of one run: %s %v", shards[0], dir, shards[0], err)
		} else if diffs := schemaDiff(firstTables, firstComplete, tables, complete); len(diffs) > 0 {
			return fmt.Errorf("merge: %s (vitlens %s) and %s (vitlens %s) hold other columns (%s): their chunks cannot be mixed; rerun the shards with one vitlens",
				shards[0], first.Version, dir, m.Version, strings.Join(diffs, "; "))
		}
		if schema == nil {
			schema = m.Schema
		}
		total += m.Total
		done, err := doneChunks(st)
		if err != nil {
			return err
		}
		for _, c := range sortedChunks(done) {
			if prev, dup := owner[c]; dup {
				return fmt.Errorf("merge: chunk %d is in both %s and %s", c, prev, dir)
			}
			owner[c] = dir
			rec, err := verifyChunk(st, m.Format, c)
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
	m.Schema = schema
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
		if err := run.copyChunk(stores[owner[c]], c, records[c]); err != nil {
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
func (r *Run) copyChunk(src store, chunk int, rec chunkRecord) error {
	for t, part := range rec.Tables {
		if err := r.st.remove(finalName(t, r.m.Format)); err != nil {
			return err
		}
		copied, err := r.st.copyFrom(src, partName(t, chunk, r.m.Format))
		if err != nil {
			return err
		}
		part.ETag = copied.ETag
		r.addPending(chunk, t, part)
	}
	return r.copyChunkFiles(src, chunk, rec)
}

// sameFolderKey names a folder so that two spellings of one compare equal.
func sameFolderKey(dir string) string {
	if IsBucket(dir) {
		return strings.TrimRight(dir, "/")
	}
	if abs, err := filepath.Abs(dir); err == nil {
		return abs
	}
	return dir
}
