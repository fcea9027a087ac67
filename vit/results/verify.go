package results

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// partRecord is what a commit knows of one committed file: its rows, size
// and SHA-256. A later session checks the file against it before trusting it.
type partRecord struct {
	Rows   int64  `json:"rows"`
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"`
}

// chunkRecord is the content of a chunk's .done marker: every table part the
// chunk committed.
type chunkRecord struct {
	Tables map[string]partRecord `json:"tables"`
	// Files are the chunk's whole files (files.go), by path under files/.
	Files map[string]partRecord `json:"files,omitempty"`
}

// finishRecord (chunks/finished.json) says which chunks the finished tables
// were built from, and what each finished table holds.
type finishRecord struct {
	Chunks []int                 `json:"chunks"`
	Tables map[string]partRecord `json:"tables"`
}

const finishFile = "finished.json"

func finishPath(dir string) string { return filepath.Join(dir, chunksDir, finishFile) }

// recordFile measures a file just written with rows rows.
func recordFile(path string, rows int64) (partRecord, error) {
	st, err := os.Stat(path)
	if err != nil {
		return partRecord{}, err
	}
	sum, err := FileSHA256(path)
	if err != nil {
		return partRecord{}, err
	}
	return partRecord{Rows: rows, Bytes: st.Size(), SHA256: sum}, nil
}

// checkFile says how the file at path differs from what was committed, or
// nil when it is intact. rel names it in the message.
func checkFile(path, rel string, want partRecord) error {
	st, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("%s is missing", rel)
	case err != nil:
		return err
	case st.Size() != want.Bytes:
		return fmt.Errorf("%s is %d bytes, but %d were committed (truncated or overwritten)", rel, st.Size(), want.Bytes)
	}
	sum, err := FileSHA256(path)
	if err != nil {
		return err
	}
	if sum != want.SHA256 {
		return fmt.Errorf("%s does not have the checksum it was committed with (damaged)", rel)
	}
	return nil
}

func writeJSONAtomic(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return writeAtomic(path, func(w io.Writer) error {
		_, err := w.Write(append(b, '\n'))
		return err
	})
}

// readMarker reads chunk's .done marker.
func readMarker(dir string, chunk int) (chunkRecord, error) {
	path := markerPath(dir, chunk)
	b, err := os.ReadFile(path)
	if err != nil {
		return chunkRecord{}, err
	}
	var rec chunkRecord
	if len(b) == 0 {
		return rec, fmt.Errorf("chunk %d: its marker %s records no row counts or checksums (an older vitlens wrote it): %w", chunk, rel(dir, path), errUnverified)
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return rec, fmt.Errorf("chunk %d: marker %s is damaged: %v", chunk, rel(dir, path), err)
	}
	return rec, nil
}

// errUnverified marks a folder written before chunks carried checksums: it
// cannot be verified, and (see runDiff) not resumed either.
var errUnverified = errors.New("rerun its command with a new --out")

// verifyChunk checks that every part chunk committed is there, whole. The
// error names the chunk and the file.
func verifyChunk(dir string, f Format, chunk int) (chunkRecord, error) {
	rec, err := readMarker(dir, chunk)
	if err != nil {
		return rec, err
	}
	for _, t := range slices.Sorted(maps.Keys(rec.Tables)) {
		if err := checkTable(t); err != nil {
			return rec, fmt.Errorf("chunk %d: marker %s: %w", chunk, rel(dir, markerPath(dir, chunk)), err)
		}
		p := partPath(dir, t, chunk, f)
		if err := checkFile(p, rel(dir, p), rec.Tables[t]); err != nil {
			return rec, fmt.Errorf("chunk %d: %w", chunk, err)
		}
	}
	return rec, verifyChunkFiles(dir, chunk, rec)
}

func rel(dir, path string) string {
	if r, err := filepath.Rel(dir, path); err == nil {
		return r
	}
	return path
}

// Verify checks that the results folder dir is complete and undamaged: every
// committed chunk's parts have the rows and checksums they were committed
// with, the tables were finished from every chunk of the run, and each
// finished table is what Finish wrote. Readers that need all rows (summary)
// call it first; the error names the chunk or table and says what to rerun.
func Verify(dir string) error {
	m, err := ReadManifest(dir)
	if err != nil {
		return fmt.Errorf("results dir %s: %w", dir, err)
	}
	rerun := "rerun the command that made it"
	if len(m.Command) > 0 {
		rerun = fmt.Sprintf("rerun `%s` to recompute it", strings.Join(m.Command, " "))
	}
	done, err := doneChunks(dir)
	if err != nil {
		return err
	}
	for _, c := range sortedChunks(done) {
		if _, err := verifyChunk(dir, m.Format, c); errors.Is(err, errUnverified) {
			return fmt.Errorf("results dir %s: %w", dir, err)
		} else if err != nil {
			return fmt.Errorf("results dir %s: %v: %s", dir, err, rerun)
		}
	}
	if m.Shard != "" {
		return fmt.Errorf("results dir %s is shard %s of a run: merge the shards with `vitlens merge` first", dir, m.Shard)
	}
	fin, err := readFinish(dir)
	if err != nil {
		return fmt.Errorf("results dir %s: %v: %s", dir, err, rerun)
	}
	chunks := sortedChunks(done)
	if fin == nil || !slices.Equal(fin.Chunks, chunks) {
		return fmt.Errorf("results dir %s is incomplete: %s: %s", dir, missingChunk(chunks, fin), strings.Replace(rerun, "recompute", "finish", 1))
	}
	for _, t := range slices.Sorted(maps.Keys(fin.Tables)) {
		p := finalPath(dir, t, m.Format)
		if err := checkFile(p, rel(dir, p), fin.Tables[t]); err != nil {
			return fmt.Errorf("results dir %s: table %v: %s", dir, err, rerun)
		}
	}
	return nil
}

// missingChunk says which chunk an unfinished folder lacks: one its finished
// tables were built from, or else the first gap in the committed chunks.
func missingChunk(done []int, fin *finishRecord) string {
	if fin != nil {
		for _, c := range fin.Chunks {
			if _, ok := slices.BinarySearch(done, c); !ok {
				return fmt.Sprintf("chunk %d was committed and finished, but its marker is gone", c)
			}
		}
	}
	for i, c := range done {
		if c != i {
			return fmt.Sprintf("chunk %d was never committed", i)
		}
	}
	if len(done) == 0 {
		return "no chunk was committed"
	}
	return fmt.Sprintf("chunks 0..%d are committed, but the run never reached its end (chunk %d and later)", len(done)-1, len(done))
}

// readFinish reads chunks/finished.json; nil when there is none.
func readFinish(dir string) (*finishRecord, error) {
	b, err := os.ReadFile(finishPath(dir))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var fin finishRecord
	if err := json.Unmarshal(b, &fin); err != nil {
		return nil, fmt.Errorf("%s is damaged: %v", rel(dir, finishPath(dir)), err)
	}
	return &fin, nil
}
