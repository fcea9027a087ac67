package results

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
)

// Table is one table a run writes: its name and its columns, in order. The
// manifest lists them (Manifest.Schema) so that a folder is never resumed or
// merged by a vitlens whose rows have other columns: its chunks would not
// concatenate, or would read back with columns missing.
type Table struct {
	Name    string   `json:"name"`
	Columns []Column `json:"columns"`
}

// Column is a column's name and its type ("int32", "float32", "string",
// "bool", ...). Type is empty where only the name is known: the columns of a
// folder written before manifests had a schema, read from its part files.
type Column struct {
	Name string `json:"name"`
	Type string `json:"type,omitempty"`
}

// TableOf describes the table name written with rows of type T (see
// WriteChunk). Row types are fixed when vitlens is built, so a type that
// cannot be a table is a programming error: it panics, and every command's
// tests catch it.
func TableOf[T any](name string) Table {
	c, err := codecOf[T]()
	if err != nil {
		panic(fmt.Sprintf("results: table %s: %v", name, err))
	}
	return c.table(name)
}

func (c *codec) table(name string) Table {
	t := Table{Name: name}
	for _, col := range c.cols {
		t.Columns = append(t.Columns, Column{Name: col.name, Type: col.kind.String()})
	}
	return t
}

func findTable(ts []Table, name string) (Table, bool) {
	i := slices.IndexFunc(ts, func(t Table) bool { return t.Name == name })
	if i < 0 {
		return Table{}, false
	}
	return ts[i], true
}

// folderSchema is the schema of the results folder in st with manifest m:
// the recorded one, or for a folder made before manifests recorded it, the
// column names of each table's first committed part (complete=false: a
// table without parts is unknown, not absent).
func folderSchema(st store, m Manifest) (tables []Table, complete bool, err error) {
	if m.Schema != nil {
		return m.Schema, true, nil
	}
	names, err := tableNames(st)
	if err != nil {
		return nil, false, err
	}
	done, err := doneChunks(st)
	if err != nil {
		return nil, false, err
	}
	for _, name := range names {
		for _, c := range sortedChunks(done) {
			part := partName(name, c, m.Format)
			if _, err := st.stat(part); errors.Is(err, fs.ErrNotExist) {
				continue // this chunk wrote no part of the table
			} else if err != nil {
				return nil, false, err
			}
			cols, err := partColumns(st, part, m.Format)
			if err != nil {
				return nil, false, err
			}
			t := Table{Name: name}
			for _, col := range cols {
				t.Columns = append(t.Columns, Column{Name: col})
			}
			tables = append(tables, t)
			break
		}
	}
	return tables, false, nil
}

// partColumns reads the column names of the part file name.
func partColumns(st store, name string, f Format) ([]string, error) {
	if f == CSV {
		file, err := st.open(name)
		if err != nil {
			return nil, err
		}
		defer file.Close()
		head, err := csv.NewReader(bufio.NewReader(file)).Read()
		if err != nil {
			return nil, fmt.Errorf("%s: reading header: %w", st.where(name), err)
		}
		return head, nil
	}
	file, pf, err := openParquet(st, name)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	var cols []string
	for _, c := range pf.Schema().Columns() {
		cols = append(cols, strings.Join(c, "."))
	}
	return cols, nil
}

// schemaDiff lists, per table, how the columns of want differ from those of
// have ("ranks: new columns entropy, kl_last"). A table missing from one side
// counts only when that side's schema is complete; types count where both
// sides know them.
func schemaDiff(have []Table, haveComplete bool, want []Table, wantComplete bool) []string {
	var diffs []string
	for _, w := range want {
		h, ok := findTable(have, w.Name)
		if !ok {
			if haveComplete {
				diffs = append(diffs, fmt.Sprintf("this vitlens also writes table %s", w.Name))
			}
			continue
		}
		if d := columnsDiff(h.Columns, w.Columns); d != "" {
			diffs = append(diffs, w.Name+": "+d)
		}
	}
	for _, h := range have {
		if _, ok := findTable(want, h.Name); !ok && wantComplete {
			diffs = append(diffs, fmt.Sprintf("table %s, which this vitlens does not write", h.Name))
		}
	}
	return diffs
}

func columnsDiff(have, want []Column) string {
	names := func(cs []Column) []string {
		var n []string
		for _, c := range cs {
			n = append(n, c.Name)
		}
		return n
	}
	var added, gone, retyped []string
	for _, w := range want {
		i := slices.IndexFunc(have, func(h Column) bool { return h.Name == w.Name })
		switch {
		case i < 0:
			added = append(added, w.Name)
		case have[i].Type != "" && w.Type != "" && have[i].Type != w.Type:
			retyped = append(retyped, fmt.Sprintf("%s %s, now %s", w.Name, have[i].Type, w.Type))
		}
	}
	for _, h := range have {
		if !slices.ContainsFunc(want, func(w Column) bool { return w.Name == h.Name }) {
			gone = append(gone, h.Name)
		}
	}
	var parts []string
	if len(added) > 0 {
		parts = append(parts, "new columns "+strings.Join(added, ", "))
	}
	if len(gone) > 0 {
		parts = append(parts, "no columns "+strings.Join(gone, ", ")+" any more")
	}
	parts = append(parts, retyped...)
	// A part file's columns may be listed in another order than the row's
	// fields: order counts only between recorded schemas.
	recorded := !slices.ContainsFunc(append(slices.Clip(have), want...), func(c Column) bool { return c.Type == "" })
	if len(parts) == 0 && recorded && !slices.Equal(names(have), names(want)) {
		parts = append(parts, "the same columns in another order")
	}
	return strings.Join(parts, ", ")
}

// checkSchema refuses to add chunks of want's tables to the folder dir
// (in st, manifest m): in the user's words, which columns differ and what
// to do.
func checkSchema(st store, dir string, m Manifest, want []Table) error {
	have, complete, err := folderSchema(st, m)
	if err != nil {
		return err
	}
	diffs := schemaDiff(have, complete, want, true)
	if len(diffs) == 0 {
		return nil
	}
	return fmt.Errorf("results dir %s was written by vitlens %s with other columns than this vitlens writes (%s): their chunks cannot be mixed. "+
		"Restart the run into a new --out folder, or finish it with vitlens %s", dir, m.Version, strings.Join(diffs, "; "), m.Version)
}

// missingColumnsError is a table file read with a row type that has columns
// the file lacks (ReadRows says which vitlens wrote it).
type missingColumnsError struct {
	path    string
	columns []string
}

func (e *missingColumnsError) Error() string {
	return fmt.Sprintf("%s: no column %s", e.path, strings.Join(e.columns, ", "))
}

// checkWrite refuses rows of a table the run did not declare, or declared
// with other columns: the manifest's schema must say what the folder holds.
func (r *Run) checkWrite(table string, c *codec) error {
	if r.m.Schema == nil {
		return nil
	}
	decl, ok := findTable(r.m.Schema, table)
	if !ok {
		return fmt.Errorf("results dir %s: table %s is not among the tables its manifest lists", r.dir, table)
	}
	if d := columnsDiff(decl.Columns, c.table(table).Columns); d != "" {
		return fmt.Errorf("results dir %s: table %s differs from its manifest's schema: %s", r.dir, table, d)
	}
	return nil
}
