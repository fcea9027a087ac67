package results

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
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
//	<table>.parquet                      finished tables (Finish)
//	chunks/chunk-000007.done             chunk 7 is complete
//	chunks/<table>/chunk-000007.parquet  chunk 7's rows of <table>
const chunksDir = "chunks"

// Run is an open results folder.
type Run struct {
	dir  string
	m    Manifest
	done map[int]bool
}

// Create opens dir for the run m, writing tables in format. A new or empty
// dir gets m's manifest. A dir that already holds the same run (SameRun) is
// resumed: its original manifest is kept, leftovers of an interrupted write
// are removed, and ChunkDone reports what is already there. A dir holding a
// different run, or other files, is an error; nothing is deleted then.
func Create(dir string, m Manifest, format Format) (*Run, error) {
	if _, err := ParseFormat(string(format)); err != nil {
		return nil, err
	}
	m.Format = format
	old, err := ReadManifest(dir)
	switch {
	case err == nil:
		if err := old.SameRun(m); err != nil {
			return nil, fmt.Errorf("results dir %s holds a different run: %v; use a new --out or --force", dir, err)
		}
		m = old
	case errors.Is(err, os.ErrNotExist):
		entries, err := os.ReadDir(dir)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		if len(entries) > 0 {
			return nil, fmt.Errorf("results dir %s is not empty and has no %s; use a new --out", dir, ManifestFile)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
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
	r := &Run{dir: dir, m: m}
	if r.done, err = doneChunks(dir); err != nil {
		return nil, err
	}
	if err := r.clean(); err != nil {
		return nil, err
	}
	return r, nil
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

// Dir is the results folder.
func (r *Run) Dir() string { return r.dir }

// Manifest is the run's manifest as stored (the original one when resumed).
func (r *Run) Manifest() Manifest { return r.m }

// ChunkDone reports whether chunk was committed, by this or an earlier process.
func (r *Run) ChunkDone(chunk int) bool { return r.done[chunk] }

// CommitChunk records chunk as complete. Call it after WriteChunk has
// returned for every table of the chunk: a crash before the commit makes the
// whole chunk be redone, never half of it kept.
func (r *Run) CommitChunk(chunk int) error {
	if chunk < 0 {
		return fmt.Errorf("results dir %s: negative chunk %d", r.dir, chunk)
	}
	err := writeAtomic(markerPath(r.dir, chunk), func(io.Writer) error { return nil })
	if err != nil {
		return err
	}
	r.done[chunk] = true
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
	if r.done[chunk] {
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
		return writeCSV(path, cod, rows)
	}
	return writeParquet(path, rows)
}

// Finish writes every table's parts, in chunk order, into <table>.parquet or
// <table>.csv beside the manifest. Parts are kept (Merge and ReadRows of an
// unfinished run need them). A table already finished is left alone, so
// Finish may be called again after a crash or on a resumed, complete run.
func (r *Run) Finish() error {
	tables, err := tableNames(r.dir)
	if err != nil {
		return err
	}
	chunks := sortedChunks(r.done)
	for _, t := range tables {
		final := finalPath(r.dir, t, r.m.Format)
		if _, err := os.Stat(final); err == nil {
			continue
		}
		var parts []string
		for _, c := range chunks {
			p := partPath(r.dir, t, c, r.m.Format)
			if _, err := os.Stat(p); err == nil {
				parts = append(parts, p)
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
	}
	return nil
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
