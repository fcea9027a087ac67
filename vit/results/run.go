package results

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
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
//	.lock                                held by the one process writing the folder (not in a bucket)
//	<table>.parquet                      finished tables (Finish)
//	chunks/chunk-000007.done             chunk 7 is complete: rows, size and SHA-256 of each part
//	chunks/<table>/chunk-000007.parquet  chunk 7's rows of <table>
//	chunks/finished.json                 the chunks and checksums of the finished tables
const chunksDir = "chunks"

// Run is an open results folder. It holds the folder's lock until Close (or
// the end of the process); a folder in a bucket has none (see bucketStore).
type Run struct {
	dir      string
	st       store
	m        Manifest
	unlock   func() error
	repaired []string

	mu      sync.Mutex
	done    map[int]bool
	pending map[int]chunkRecord // parts written but not yet committed
}

// Create opens dir for the run m, writing tables in format. dir is a local
// folder or an s3://bucket/prefix URL. A new or empty dir gets m's manifest.
// A dir that already holds the same run (SameRun) is resumed: its original
// manifest is kept, leftovers of an interrupted write are removed, every
// committed chunk is checked against the rows and checksums its marker
// records (a damaged or missing part makes the chunk be redone; Repaired
// says which), and ChunkDone reports what is intact. A dir holding a
// different run, or other files, is an error; nothing is deleted then. A
// local folder is locked first: a second Create of the same folder, in this
// or another process, is refused until the first Run is closed.
func Create(dir string, m Manifest, format Format) (*Run, error) {
	if _, err := ParseFormat(string(format)); err != nil {
		return nil, err
	}
	m.Format = format
	st, err := openStore(dir)
	if err != nil {
		return nil, err
	}
	// A foreign folder is refused before anything (even the lock) is put in it.
	if err := checkForeign(st, dir); err != nil {
		return nil, err
	}
	unlock, err := st.lock()
	if err != nil {
		return nil, err
	}
	r, err := open(st, dir, m, unlock)
	if err != nil {
		unlock()
		return nil, err
	}
	return r, nil
}

// checkForeign refuses a folder that has files but no manifest.
func checkForeign(st store, dir string) error {
	if _, err := st.stat(ManifestFile); !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	files, dirs, err := st.list("")
	if err != nil {
		return err
	}
	for _, name := range append(files, dirs...) {
		if name != LockFile {
			return fmt.Errorf("results dir %s is not empty and has no %s; use a new --out", dir, ManifestFile)
		}
	}
	return nil
}

// open does Create's work under the lock. The manifest is created only
// where none exists (putNew): of two runs racing for one folder, the second
// finds the first's manifest and is refused unless it is the same run.
func open(st store, dir string, m Manifest, unlock func() error) (*Run, error) {
	old, err := readManifest(st)
	if errors.Is(err, fs.ErrNotExist) {
		if err := checkForeign(st, dir); err != nil { // files may have come since the first look
			return nil, err
		}
		if err = writeManifest(st, m); errors.Is(err, fs.ErrExist) {
			old, err = readManifest(st)
		} else if err == nil {
			old = m
		}
	}
	if err != nil {
		return nil, err
	}
	if err := old.SameRun(m); err != nil {
		return nil, fmt.Errorf("results dir %s %v: use a new --out", dir, err)
	}
	if m.Schema != nil { // a new folder's is m's own
		if err := checkSchema(st, dir, old, m.Schema); err != nil {
			return nil, err
		}
		if old.Schema == nil { // its parts' columns matched: record them
			old.Schema = m.Schema
			if err := replaceManifest(st, old); err != nil {
				return nil, err
			}
		}
	}
	r := &Run{dir: dir, st: st, m: old, unlock: unlock, done: map[int]bool{}, pending: map[int]chunkRecord{}}
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
	markers, err := doneChunks(r.st)
	if err != nil {
		return err
	}
	for _, c := range sortedChunks(markers) {
		if _, err := verifyChunk(r.st, r.m.Format, c); err != nil {
			r.repaired = append(r.repaired, err.Error())
			if err := r.st.remove(markerName(c)); err != nil {
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
	if err := r.st.remove(finishName); err != nil {
		return err
	}
	tables, err := tableNames(r.st)
	if err != nil {
		return err
	}
	for _, t := range tables {
		if err := r.st.remove(finalName(t, r.m.Format)); err != nil {
			return err
		}
	}
	return nil
}

// clean removes temporary files and the parts of uncommitted chunks, so a
// crash never leaves anything that a later Finish or Merge could pick up.
func (r *Run) clean() error {
	for _, d := range []string{"", chunksDir} {
		if err := r.st.cleanTemps(d); err != nil {
			return err
		}
	}
	if err := r.cleanChunkFiles(); err != nil {
		return err
	}
	tables, err := tableNames(r.st)
	if err != nil {
		return err
	}
	for _, t := range tables {
		tdir := joinName(chunksDir, t)
		if err := r.st.cleanTemps(tdir); err != nil {
			return err
		}
		parts, err := partChunks(r.st, tdir)
		if err != nil {
			return err
		}
		for c, name := range parts {
			if !r.done[c] {
				if err := r.st.remove(joinName(tdir, name)); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// Close releases the folder's lock. The Run must not be written after.
func (r *Run) Close() error { return r.unlock() }

// Repaired lists the committed chunks that Create found damaged or missing
// and will be redone, each with the file and the problem.
func (r *Run) Repaired() []string { return r.repaired }

// Dir is the results folder (a path or an s3:// URL).
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
	if err := writeJSON(r.st, markerName(chunk), rec); err != nil {
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
	if err := r.checkWrite(table, cod); err != nil {
		return err
	}
	// A finished table no longer covers every chunk.
	if err := r.st.remove(finalName(table, r.m.Format)); err != nil {
		return err
	}
	name := partName(table, chunk, r.m.Format)
	var rec partRecord
	if r.m.Format == CSV {
		rec, err = writeCSV(r.st, name, cod, rows)
	} else {
		rec, err = writeParquet(r.st, name, rows)
	}
	if err != nil {
		return err
	}
	rec.Rows = int64(len(rows))
	r.addPending(chunk, table, rec)
	return nil
}

// WriteFile puts a file that is not a table (summary.json, PNGs) into the
// results folder, atomically; name is slash-separated.
func (r *Run) WriteFile(name string, data []byte) error {
	_, err := r.st.put(name, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
	return err
}

// PutFile is Run.WriteFile for a folder that is not open.
func PutFile(dir, name string, data []byte) error {
	st, err := openStore(dir)
	if err != nil {
		return err
	}
	return (&Run{dir: dir, st: st}).WriteFile(name, data)
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
	tables, err := tableNames(r.st)
	if err != nil {
		return err
	}
	r.mu.Lock()
	chunks := sortedChunks(r.done)
	r.mu.Unlock()
	old, err := readFinish(r.st)
	if err != nil || old != nil && !slices.Equal(old.Chunks, chunks) {
		old = nil // rebuild every table
	}
	fin := finishRecord{Chunks: chunks, Tables: map[string]partRecord{}}
	for _, t := range tables {
		final := finalName(t, r.m.Format)
		if old != nil {
			if rec, ok := old.Tables[t]; ok && checkFile(r.st, final, rec) == nil {
				fin.Tables[t] = rec
				continue
			}
		}
		var parts []string
		var rows int64
		for _, c := range chunks {
			p := partName(t, c, r.m.Format)
			if _, err := r.st.stat(p); err == nil {
				parts = append(parts, p)
				rows += r.committedRows(c, t)
			}
		}
		var rec partRecord
		if r.m.Format == CSV {
			rec, err = concatCSV(r.st, final, parts)
		} else {
			rec, err = concatParquet(r.st, final, parts)
		}
		if err != nil {
			return err
		}
		rec.Rows = rows
		fin.Tables[t] = rec
	}
	return writeJSON(r.st, finishName, fin)
}

// committedRows reads chunk's row count of table from its marker.
func (r *Run) committedRows(chunk int, table string) int64 {
	rec, err := readMarker(r.st, chunk)
	if err != nil {
		return 0
	}
	return rec.Tables[table].Rows
}

func markerName(chunk int) string { return joinName(chunksDir, chunkName(chunk)+".done") }

func partName(table string, chunk int, f Format) string {
	return joinName(chunksDir, table, chunkName(chunk)+f.ext())
}

func finalName(table string, f Format) string { return table + f.ext() }

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

func doneChunks(st store) (map[int]bool, error) {
	files, _, err := st.list(chunksDir)
	if err != nil {
		return nil, err
	}
	done := map[int]bool{}
	for _, name := range files {
		if c, ok := parseChunkName(name, ".done"); ok {
			done[c] = true
		}
	}
	return done, nil
}

// partChunks maps chunk index to part file name in one table's folder.
func partChunks(st store, tdir string) (map[int]string, error) {
	files, _, err := st.list(tdir)
	if err != nil {
		return nil, err
	}
	parts := map[int]string{}
	for _, name := range files {
		if strings.Contains(name, tmpMarker) {
			continue
		}
		if c, ok := parseChunkName(name, path.Ext(name)); ok {
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
func tableNames(st store) ([]string, error) {
	_, dirs, err := st.list(chunksDir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, d := range dirs {
		if checkTable(d) == nil {
			names = append(names, d)
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
