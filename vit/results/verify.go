package results

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"slices"
	"strings"
)

// partRecord is what a commit knows of one committed file: its rows, size
// and SHA-256. A later session checks the file against it before trusting it.
type partRecord struct {
	Rows   int64  `json:"rows"`
	Bytes  int64  `json:"bytes"`
	SHA256 string `json:"sha256"`
	// ETag is the S3 server's tag of the object, when the part is in a
	// bucket: a part checked against it need not be downloaded and hashed.
	ETag string `json:"etag,omitempty"`
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

const finishName = chunksDir + "/finished.json"

// checkFile says how the file name of st differs from what was committed,
// or nil when it is intact. A bucket's object whose ETag is the committed
// one is the committed object (S3 changes the ETag with the content);
// anything else is hashed.
func checkFile(st store, name string, want partRecord) error {
	got, err := st.stat(name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%s is missing", name)
	case err != nil:
		return err
	case got.Bytes != want.Bytes:
		return fmt.Errorf("%s is %d bytes, but %d were committed (truncated or overwritten)", name, got.Bytes, want.Bytes)
	case want.ETag != "" && got.ETag == want.ETag:
		return nil
	}
	got, err = fileRecord(st, name)
	if err != nil {
		return err
	}
	if got.SHA256 != want.SHA256 {
		return fmt.Errorf("%s does not have the checksum it was committed with (damaged)", name)
	}
	return nil
}

// writeJSON puts v, indented, at name.
func writeJSON(st store, name string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = st.put(name, func(w io.Writer) error {
		_, err := w.Write(append(b, '\n'))
		return err
	})
	return err
}

// readMarker reads chunk's .done marker.
func readMarker(st store, chunk int) (chunkRecord, error) {
	name := markerName(chunk)
	b, err := st.get(name)
	if err != nil {
		return chunkRecord{}, err
	}
	var rec chunkRecord
	if len(b) == 0 {
		return rec, fmt.Errorf("chunk %d: its marker %s records no row counts or checksums (an older vitlens wrote it): %w", chunk, name, errUnverified)
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return rec, fmt.Errorf("chunk %d: marker %s is damaged: %v", chunk, name, err)
	}
	return rec, nil
}

// errUnverified marks a folder written before chunks carried checksums: it
// cannot be verified, and (see runDiff) not resumed either.
var errUnverified = errors.New("rerun its command with a new --out")

// verifyChunk checks that every part chunk committed is there, whole. The
// error names the chunk and the file.
func verifyChunk(st store, f Format, chunk int) (chunkRecord, error) {
	rec, err := readMarker(st, chunk)
	if err != nil {
		return rec, err
	}
	for _, t := range slices.Sorted(maps.Keys(rec.Tables)) {
		if err := checkTable(t); err != nil {
			return rec, fmt.Errorf("chunk %d: marker %s: %w", chunk, markerName(chunk), err)
		}
		if err := checkFile(st, partName(t, chunk, f), rec.Tables[t]); err != nil {
			return rec, fmt.Errorf("chunk %d: %w", chunk, err)
		}
	}
	return rec, verifyChunkFiles(st, chunk, rec)
}

// Verify checks that the results folder dir is complete and undamaged: every
// committed chunk's parts have the rows and checksums they were committed
// with, the tables were finished from every chunk of the run, and each
// finished table is what Finish wrote. Readers that need all rows (summary)
// call it first; the error names the chunk or table and says what to rerun.
func Verify(dir string) error {
	st, m, err := openFolder(dir)
	if err != nil {
		return err
	}
	rerun := "rerun the command that made it"
	if len(m.Command) > 0 {
		rerun = fmt.Sprintf("rerun `%s` to recompute it", strings.Join(m.Command, " "))
	}
	done, err := doneChunks(st)
	if err != nil {
		return err
	}
	for _, c := range sortedChunks(done) {
		if _, err := verifyChunk(st, m.Format, c); errors.Is(err, errUnverified) {
			return fmt.Errorf("results dir %s: %w", dir, err)
		} else if err != nil {
			return fmt.Errorf("results dir %s: %v: %s", dir, err, rerun)
		}
	}
	if m.Shard != "" {
		return fmt.Errorf("results dir %s is shard %s of a run: merge the shards with `vitlens merge` first", dir, m.Shard)
	}
	fin, err := readFinish(st)
	if err != nil {
		return fmt.Errorf("results dir %s: %v: %s", dir, err, rerun)
	}
	chunks := sortedChunks(done)
	if fin == nil || !slices.Equal(fin.Chunks, chunks) {
		return fmt.Errorf("results dir %s is incomplete: %s: %s", dir, missingChunk(chunks, fin), strings.Replace(rerun, "recompute", "finish", 1))
	}
	for _, t := range slices.Sorted(maps.Keys(fin.Tables)) {
		if err := checkFile(st, finalName(t, m.Format), fin.Tables[t]); err != nil {
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
func readFinish(st store) (*finishRecord, error) {
	b, err := st.get(finishName)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var fin finishRecord
	if err := json.Unmarshal(b, &fin); err != nil {
		return nil, fmt.Errorf("%s is damaged: %v", finishName, err)
	}
	return &fin, nil
}
