package results

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
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
	p := ChunkFilePath(r.dir, kind, chunk, ext)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	if err := writeAtomic(p, fill); err != nil {
		return err
	}
	rec, err := recordFile(p, rows)
	if err != nil {
		return err
	}
	r.addPendingFile(chunk, path.Join(kind, chunkName(chunk)+ext), rec)
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
func verifyChunkFiles(dir string, chunk int, rec chunkRecord) error {
	for _, name := range slices.Sorted(maps.Keys(rec.Files)) {
		kind, base := path.Split(name)
		if checkTable(path.Clean(kind)) != nil || path.Dir(name) != path.Clean(kind) {
			return fmt.Errorf("chunk %d: marker %s names an odd file %q", chunk, rel(dir, markerPath(dir, chunk)), name)
		}
		if c, ok := parseChunkName(base, path.Ext(base)); !ok || c != chunk {
			return fmt.Errorf("chunk %d: marker %s names another chunk's file %q", chunk, rel(dir, markerPath(dir, chunk)), name)
		}
		p := filepath.Join(dir, filesDir, filepath.FromSlash(name))
		if err := checkFile(p, rel(dir, p), rec.Files[name]); err != nil {
			return fmt.Errorf("chunk %d: %w", chunk, err)
		}
	}
	return nil
}

// cleanChunkFiles removes temporary files and the files of uncommitted
// chunks under files/.
func (r *Run) cleanChunkFiles() error {
	kinds, err := os.ReadDir(filepath.Join(r.dir, filesDir))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, k := range kinds {
		if !k.IsDir() {
			continue
		}
		kdir := filepath.Join(r.dir, filesDir, k.Name())
		if err := removeTemps(kdir); err != nil {
			return err
		}
		parts, err := partChunks(kdir)
		if err != nil {
			return err
		}
		for c, name := range parts {
			if !r.done[c] {
				if err := os.Remove(filepath.Join(kdir, name)); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// copyChunkFiles links chunk's files from the results folder src.
func (r *Run) copyChunkFiles(src string, chunk int, rec chunkRecord) error {
	for rel, part := range rec.Files {
		to := filepath.Join(r.dir, filesDir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(to), 0o755); err != nil {
			return err
		}
		if err := linkOrCopyAtomic(filepath.Join(src, filesDir, filepath.FromSlash(rel)), to); err != nil {
			return err
		}
		r.addPendingFile(chunk, rel, part)
	}
	return nil
}
