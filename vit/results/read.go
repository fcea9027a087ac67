package results

import (
	"fmt"
	"os"
	"path/filepath"
)

// ReadRows streams the rows of one table of the results folder dir into fn,
// stopping at fn's first error (returned as is). It reads the finished table
// when there is one, otherwise the committed parts in chunk order, so a run
// can be inspected while it is still going or after it was interrupted.
func ReadRows[T any](dir, table string, fn func(T) error) error {
	if err := checkTable(table); err != nil {
		return fmt.Errorf("results dir %s: %w", dir, err)
	}
	m, err := ReadManifest(dir)
	if err != nil {
		return fmt.Errorf("results dir %s: %w", dir, err)
	}
	read := readParquet[T]
	if m.Format == CSV {
		read = readCSV[T]
	}
	final := finalPath(dir, table, m.Format)
	if _, err := os.Stat(final); err == nil {
		return read(final, fn)
	}
	tdir := filepath.Join(dir, chunksDir, table)
	parts, err := partChunks(tdir)
	if err != nil {
		return fmt.Errorf("results dir %s has no table %q (no %s, no %s)", dir, table, filepath.Base(final), filepath.Join(chunksDir, table))
	}
	done, err := doneChunks(dir)
	if err != nil {
		return err
	}
	for _, c := range sortedChunks(done) {
		if name, ok := parts[c]; ok {
			if err := read(filepath.Join(tdir, name), fn); err != nil {
				return err
			}
		}
	}
	return nil
}
