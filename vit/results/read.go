package results

import (
	"errors"
	"fmt"
	"slices"
)

// ReadRows streams the rows of one table of the results folder dir into fn,
// stopping at fn's first error (returned as is). It reads the finished table
// when there is one, otherwise the committed parts in chunk order, so a run
// can be inspected while it is still going or after it was interrupted.
func ReadRows[T any](dir, table string, fn func(T) error) error {
	err := readRows(dir, table, fn)
	var missing *missingColumnsError
	if errors.As(err, &missing) {
		if m, merr := ReadManifest(dir); merr == nil {
			return fmt.Errorf("%w (written by vitlens %s, before this vitlens's columns: rerun its command into a new --out, or read it with vitlens %s)", err, m.Version, m.Version)
		}
	}
	return err
}

func readRows[T any](dir, table string, fn func(T) error) error {
	if err := checkTable(table); err != nil {
		return fmt.Errorf("results dir %s: %w", dir, err)
	}
	st, m, err := openFolder(dir)
	if err != nil {
		return err
	}
	read := readParquet[T]
	if m.Format == CSV {
		read = readCSV[T]
	}
	final := finalName(table, m.Format)
	if _, err := st.stat(final); err == nil {
		return read(st, final, fn)
	}
	tables, err := tableNames(st)
	if err != nil {
		return err
	}
	if !slices.Contains(tables, table) {
		return fmt.Errorf("results dir %s has no table %q (no %s, no %s)", dir, table, final, joinName(chunksDir, table))
	}
	tdir := joinName(chunksDir, table)
	parts, err := partChunks(st, tdir)
	if err != nil {
		return err
	}
	done, err := doneChunks(st)
	if err != nil {
		return err
	}
	for _, c := range sortedChunks(done) {
		if name, ok := parts[c]; ok {
			if err := read(st, joinName(tdir, name), fn); err != nil {
				return err
			}
		}
	}
	return nil
}
