package results

import (
	"fmt"
	"io"
	"maps"
	"path"
	"path/filepath"
	"slices"
)

// Chunk files are whole files a chunk commits beside its table rows, one per
// chunk and kind: a cache run's safetensors tensors, which are not rows and
// are never concatenated. They live in files/<kind>/chunk-000007<ext>, are
// recorded in the chunk's marker with their size and SHA-256, checked when
// a run is resumed or merged (a damaged one makes its chunk be redone),
// removed when their chunk was never committed, and linked by Merge. Finish
// leaves them where they are.
const filesDir = "files"

// ChunkFilePath is where chunk's file of kind lies in the results folder dir.
func ChunkFilePath(dir, kind string, chunk int, ext string) string {
	return filepath.Join(dir, filesDir, kind, chunkName(chunk)+ext)
}

// WriteChunkFile writes chunk's file of kind (rows: what it holds, e.g.
// images) atomically through fill, and records it for CommitChunk.
func (r *Run) WriteChunkFile(kind, ext string, chunk int, rows int64, fill func(w io.Writer) error) error {
	if err := checkTable(kind); err != nil {
		return fmt.Errorf("results dir %s: %w", r.dir, err)
	}
	if chunk < 0 {
		return fmt.Errorf("results dir %s: negative chunk %d", r.dir, chunk)
	}
	if r.ChunkDone(chunk) {
		return fmt.Errorf("results dir %s: chunk %d is already committed", r.dir, chunk)
	}
	rel := path.Join(kind, chunkName(chunk)+ext)
	rec, err := r.st.put(joinName(filesDir, rel), fill)
	if err != nil {
		return err
	}
	rec.Rows = rows
	r.addPendingFile(chunk, rel, rec)
	return nil
}

func (r *Run) addPendingFile(chunk int, rel string, rec partRecord) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.pending[chunk]
	if p.Files == nil {
		p.Files = map[string]partRecord{}
	}
	p.Files[rel] = rec
	r.pending[chunk] = p
}

// verifyChunkFiles checks the files a chunk's marker records.
func verifyChunkFiles(st store, chunk int, rec chunkRecord) error {
	for _, name := range slices.Sorted(maps.Keys(rec.Files)) {
		kind, base := path.Split(name)
		if checkTable(path.Clean(kind)) != nil || path.Dir(name) != path.Clean(kind) {
			return fmt.Errorf("chunk %d: marker %s names an odd file %q", chunk, markerName(chunk), name)
		}
		if c, ok := parseChunkName(base, path.Ext(base)); !ok || c != chunk {
			return fmt.Errorf("chunk %d: marker %s names another chunk's file %q", chunk, markerName(chunk), name)
		}
		if err := checkFile(st, joinName(filesDir, name), rec.Files[name]); err != nil {
			return fmt.Errorf("chunk %d: %w", chunk, err)
		}
	}
	return nil
}

// cleanChunkFiles removes temporary files and the files of uncommitted
// chunks under files/.
func (r *Run) cleanChunkFiles() error {
	_, kinds, err := r.st.list(filesDir)
	if err != nil {
		return err
	}
	for _, k := range kinds {
		kdir := joinName(filesDir, k)
		if err := r.st.cleanTemps(kdir); err != nil {
			return err
		}
		parts, err := partChunks(r.st, kdir)
		if err != nil {
			return err
		}
		for c, name := range parts {
			if !r.done[c] {
				if err := r.st.remove(joinName(kdir, name)); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// copyChunkFiles links (or copies) chunk's files from the results folder src.
func (r *Run) copyChunkFiles(src store, chunk int, rec chunkRecord) error {
	for rel, part := range rec.Files {
		copied, err := r.st.copyFrom(src, joinName(filesDir, rel))
		if err != nil {
			return err
		}
		part.ETag = copied.ETag
		r.addPendingFile(chunk, rel, part)
	}
	return nil
}
