package results

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Format is the on-disk encoding of every table of a run.
type Format string

const (
	Parquet Format = "parquet"
	CSV     Format = "csv"
)

// ParseFormat reads a --format flag.
func ParseFormat(s string) (Format, error) {
	switch f := Format(strings.ToLower(s)); f {
	case Parquet, CSV:
		return f, nil
	}
	return "", fmt.Errorf("unknown results format %q (want parquet or csv)", s)
}

func (f Format) ext() string { return "." + string(f) }

// Layout of a results folder:
//
//	manifest.json
//	.lock                                held by the one process writing the folder
//	<table>.parquet                      finished tables (Finish)
//	chunks/chunk-000007.done             chunk 7 is complete: rows, size and SHA-256 of each part
//	chunks/<table>/chunk-000007.parquet  chunk 7's rows of <table>
//	chunks/finished.json                 the chunks and checksums of the finished tables
const chunksDir = "chunks"

// Run is an open results folder. It holds the folder's lock until Close (or
// the end of the process).
type Run struct {
	dir      string
	m        Manifest
	lock     *folderLock
	repaired []string

	mu      sync.Mutex
	done    map[int]bool
	pending map[int]chunkRecord // parts written but not yet committed
}

// Create opens dir for the run m, writing tables in format. A new or empty
// dir gets m's manifest. A dir that already holds the same run (SameRun) is
// resumed: its original manifest is kept, leftovers of an interrupted write
// are removed, every committed chunk is checked against the rows and
// checksums its marker records (a damaged or missing part makes the chunk be
// redone; Repaired says which), and ChunkDone reports what is intact. A dir
// holding a different run, or other files, is an error; nothing is deleted
// then. The folder is locked first: a second Create of the same folder, in
// this or another process, is refused until the first Run is closed.
func Create(dir string, m Manifest, format Format) (*Run, error) {
	if _, err := ParseFormat(string(format)); err != nil {
		return nil, err
	}
	m.Format = format
	// A foreign folder is refused before anything (even the lock) is put in it.
	if err := checkForeign(dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	lock, err := lockFolder(dir)
	if err != nil {
		return nil, err
	}
	r, err := open(dir, m, lock)
	if err != nil {
		lock.release()
		return nil, err
	}
	return r, nil
}

// checkForeign refuses a folder that has files but no manifest.
func checkForeign(dir string) error {
	if _, err := os.Stat(filepath.Join(dir, ManifestFile)); !errors.Is(err, os.ErrNotExist) {
		return err
	}
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	for _, e := range entries {
		if e.Name() != LockFile {
			return fmt.Errorf("results dir %s is not empty and has no %s; use a new --out", dir, ManifestFile)
		}
	}
	return nil
}

// open does Create's work under the lock.
func open(dir string, m Manifest, lock *folderLock) (*Run, error) {
	old, err := ReadManifest(dir)
	switch {
	case err == nil:
		if err := old.SameRun(m); err != nil {
			return nil, fmt.Errorf("results dir %s %v: use a new --out", dir, err)
		}
		m = old
	case errors.Is(err, os.ErrNotExist):
		if err := checkForeign(dir); err != nil { // files may have come since the first look
			return nil, err
		}
		if err := writeManifest(dir, m); err != nil {
			return nil, err
		}
	default:
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(dir, chunksDir), 0o755); err != nil {
		return nil, err
	}
	r := &Run{dir: dir, m: m, lock: lock, done: map[int]bool{}, pending: map[int]chunkRecord{}}
	if err := r.verify(); err != nil {
		return nil, err
	}
	if err := r.clean(); err != nil {
		return nil, err
	}
	return r, nil
}

// verify keeps the committed chunks whose parts are intact. A damaged chunk
// loses its marker first (so a crash here still leaves it uncommitted), then
// clean removes its parts, and the finished tables go, since they may hold
// what was lost.
func (r *Run) verify() error {
	markers, err := doneChunks(r.dir)
	if err != nil {
		return err
	}
	for _, c := range sortedChunks(markers) {
		if _, err := verifyChunk(r.dir, r.m.Format, c); err != nil {
			r.repaired = append(r.repaired, err.Error())
			if err := os.Remove(markerPath(r.dir, c)); err != nil {
				return err
			}
			continue
		}
		r.done[c] = true
	}
	if len(r.repaired) > 0 {
		return r.unfinish()
	}
	return nil
}

// unfinish removes the finished tables and their record.
func (r *Run) unfinish() error {
	if err := os.Remove(finishPath(r.dir)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	tables, err := tableNames(r.dir)
	if err != nil {
		return err
	}
	for _, t := range tables {
		if err := os.Remove(finalPath(r.dir, t, r.m.Format)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

// clean removes temporary files and the parts of uncommitted chunks, so a
// crash never leaves anything that a later Finish or Merge could pick up.
func (r *Run) clean() error {
	if err := removeTemps(r.dir); err != nil {
		return err
	}
	if err := removeTemps(filepath.Join(r.dir, chunksDir)); err != nil {
		return err
	}
	if err := r.cleanChunkFiles(); err != nil {
		return err
	}
	tables, err := tableNames(r.dir)
	if err != nil {
		return err
	}
	for _, t := range tables {
		tdir := filepath.Join(r.dir, chunksDir, t)
		if err := removeTemps(tdir); err != nil {
			return err
		}
		parts, err := partChunks(tdir)
		if err != nil {
			return err
		}
		for c, name := range parts {
			if !r.done[c] {
				if err := os.Remove(filepath.Join(tdir, name)); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// Close releases the folder's lock. The Run must not be written after.
func (r *Run) Close() error { return r.lock.release() }

// Repaired lists the committed chunks that Create found damaged or missing
// and will be redone, each with the file and the problem.
func (r *Run) Repaired() []string { return r.repaired }

// Dir is the results folder.
func (r *Run) Dir() string { return r.dir }

// Manifest is the run's manifest as stored (the original one when resumed).
func (r *Run) Manifest() Manifest { return r.m }

// ChunkDone reports whether chunk was committed, by this or an earlier
// process, and found intact.
func (r *Run) ChunkDone(chunk int) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.done[chunk]
}

// CommitChunk records chunk as complete, with the rows, size and checksum of
// every part written for it. Call it after WriteChunk has returned for every
// table of the chunk: a crash before the commit makes the whole chunk be
// redone, never half of it kept.
func (r *Run) CommitChunk(chunk int) error {
	if chunk < 0 {
		return fmt.Errorf("results dir %s: negative chunk %d", r.dir, chunk)
	}
	r.mu.Lock()
	rec := r.pending[chunk]
	r.mu.Unlock()
	if rec.Tables == nil {
		rec.Tables = map[string]partRecord{}
	}
	if err := writeJSONAtomic(markerPath(r.dir, chunk), rec); err != nil {
		return err
	}
	r.mu.Lock()
	r.done[chunk] = true
	delete(r.pending, chunk)
	r.mu.Unlock()
	return nil
}

// WriteChunk writes one table's rows of one chunk as a part file, atomically.
// T is a struct; its `parquet:"name"` tags name the columns of both formats.
func WriteChunk[T any](r *Run, table string, chunk int, rows []T) error {
	if err := checkTable(table); err != nil {
		return fmt.Errorf("results dir %s: %w", r.dir, err)
	}
	if chunk < 0 {
		return fmt.Errorf("results dir %s: negative chunk %d", r.dir, chunk)
	}
	if r.ChunkDone(chunk) {
		return fmt.Errorf("results dir %s: chunk %d is already committed", r.dir, chunk)
	}
	cod, err := codecOf[T]()
	if err != nil {
		return err
	}
	tdir := filepath.Join(r.dir, chunksDir, table)
	if err := os.MkdirAll(tdir, 0o755); err != nil {
		return err
	}
	// A finished table no longer covers every chunk.
	if err := os.Remove(finalPath(r.dir, table, r.m.Format)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	path := partPath(r.dir, table, chunk, r.m.Format)
	if r.m.Format == CSV {
		err = writeCSV(path, cod, rows)
	} else {
		err = writeParquet(path, rows)
	}
	if err != nil {
		return err
	}
	rec, err := recordFile(path, int64(len(rows)))
	if err != nil {
		return err
	}
	r.addPending(chunk, table, rec)
	return nil
}

func (r *Run) addPending(chunk int, table string, rec partRecord) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.pending[chunk]
	if p.Tables == nil {
		p.Tables = map[string]partRecord{}
		r.pending[chunk] = p
	}
	p.Tables[table] = rec
}

// Finish writes every table's parts, in chunk order, into <table>.parquet or
// <table>.csv beside the manifest, and records their checksums. Parts are
// kept (Merge and ReadRows of an unfinished run need them). A table already
// finished from the same chunks and intact is left alone, so Finish may be
// called again after a crash or on a resumed, complete run.
func (r *Run) Finish() error {
	tables, err := tableNames(r.dir)
	if err != nil {
		return err
	}
	r.mu.Lock()
	chunks := sortedChunks(r.done)
	r.mu.Unlock()
	old, err := readFinish(r.dir)
	if err != nil || old != nil && !slices.Equal(old.Chunks, chunks) {
		old = nil // rebuild every table
	}
	fin := finishRecord{Chunks: chunks, Tables: map[string]partRecord{}}
	for _, t := range tables {
		final := finalPath(r.dir, t, r.m.Format)
		if old != nil {
			if rec, ok := old.Tables[t]; ok && checkFile(final, "", rec) == nil {
				fin.Tables[t] = rec
				continue
			}
		}
		var parts []string
		var rows int64
		for _, c := range chunks {
			p := partPath(r.dir, t, c, r.m.Format)
			if _, err := os.Stat(p); err == nil {
				parts = append(parts, p)
				rows += r.committedRows(c, t)
			}
		}
		if r.m.Format == CSV {
			err = concatCSV(final, parts)
		} else {
			err = concatParquet(final, parts)
		}
		if err != nil {
			return err
		}
		if fin.Tables[t], err = recordFile(final, rows); err != nil {
			return err
		}
	}
	return writeJSONAtomic(finishPath(r.dir), fin)
}

// committedRows reads chunk's row count of table from its marker.
func (r *Run) committedRows(chunk int, table string) int64 {
	rec, err := readMarker(r.dir, chunk)
	if err != nil {
		return 0
	}
	return rec.Tables[table].Rows
}

func markerPath(dir string, chunk int) string {
	return filepath.Join(dir, chunksDir, chunkName(chunk)+".done")
}

func partPath(dir, table string, chunk int, f Format) string {
	return filepath.Join(dir, chunksDir, table, chunkName(chunk)+f.ext())
}

func finalPath(dir, table string, f Format) string {
	return filepath.Join(dir, table+f.ext())
}

func chunkName(chunk int) string { return fmt.Sprintf("chunk-%06d", chunk) }

// parseChunkName reads the chunk index from "chunk-000007<suffix>".
func parseChunkName(name, suffix string) (int, bool) {
	s, ok := strings.CutPrefix(name, "chunk-")
	if !ok {
		return 0, false
	}
	if s, ok = strings.CutSuffix(s, suffix); !ok {
		return 0, false
	}
	c, err := strconv.Atoi(s)
	return c, err == nil && c >= 0
}

func doneChunks(dir string) (map[int]bool, error) {
	entries, err := os.ReadDir(filepath.Join(dir, chunksDir))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	done := map[int]bool{}
	for _, e := range entries {
		if c, ok := parseChunkName(e.Name(), ".done"); ok && !e.IsDir() {
			done[c] = true
		}
	}
	return done, nil
}

// partChunks maps chunk index to part file name in one table's folder.
func partChunks(tdir string) (map[int]string, error) {
	entries, err := os.ReadDir(tdir)
	if err != nil {
		return nil, err
	}
	parts := map[int]string{}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || strings.Contains(name, tmpMarker) {
			continue
		}
		if c, ok := parseChunkName(name, filepath.Ext(name)); ok {
			parts[c] = name
		}
	}
	return parts, nil
}

func sortedChunks(done map[int]bool) []int {
	var cs []int
	for c, ok := range done {
		if ok {
			cs = append(cs, c)
		}
	}
	slices.Sort(cs)
	return cs
}

// tableNames lists the tables that have a parts folder.
func tableNames(dir string) ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(dir, chunksDir))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() && checkTable(e.Name()) == nil {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// checkTable keeps table names usable as file names everywhere.
func checkTable(name string) error {
	if name == "" {
		return errors.New("empty table name")
	}
	for _, c := range name {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return fmt.Errorf("table name %q: use only a-z, 0-9, _ and -", name)
		}
	}
	return nil
}
