package results

import (
	"fmt"
	"io"
	"strings"

	"github.com/parquet-go/parquet-go"
	"github.com/parquet-go/parquet-go/compress/zstd"
)

// One codec for every writer, so its pooled encoders are reused.
var zstdCodec = &zstd.Codec{Level: zstd.SpeedDefault}

// writerOptions must be the same for parts and finished tables: then
// concatenation copies each part's compressed pages verbatim instead of
// decoding and re-encoding them.
func writerOptions() []parquet.WriterOption {
	return []parquet.WriterOption{parquet.Compression(zstdCodec)}
}

// catch turns a panic inside parquet-go (it panics on some malformed inputs
// and unsupported row types) into an error; callers add the file name.
func catch(err *error) {
	if p := recover(); p != nil {
		*err = fmt.Errorf("parquet-go: %v", p)
	}
}

func writeParquet[T any](st store, name string, rows []T) (partRecord, error) {
	return st.put(name, func(w io.Writer) (err error) {
		defer catch(&err)
		pw := parquet.NewGenericWriter[T](w, writerOptions()...)
		if _, err := pw.Write(rows); err != nil {
			return err
		}
		return pw.Close()
	})
}

func openParquet(st store, name string) (readable, *parquet.File, error) {
	f, err := st.open(name)
	if err != nil {
		return nil, nil, err
	}
	pf, err := parquet.OpenFile(f, f.Size())
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("%s: not a readable Parquet file: %w", st.where(name), err)
	}
	return f, pf, nil
}

// concatParquet streams the row groups of parts, in order, into dst. Only one
// row group is in flight at a time; with matching writer options its pages
// are copied without decoding.
func concatParquet(st store, dst string, parts []string) (partRecord, error) {
	if len(parts) == 0 {
		return partRecord{}, fmt.Errorf("%s: no parts to concatenate", st.where(dst))
	}
	return st.put(dst, func(w io.Writer) (err error) {
		defer catch(&err)
		var pw *parquet.Writer
		var first string
		for _, p := range parts {
			err := func() error {
				f, pf, err := openParquet(st, p)
				if err != nil {
					return err
				}
				defer f.Close()
				if pw == nil {
					pw = parquet.NewWriter(w, append(writerOptions(), pf.Schema())...)
					first = p
				} else if !parquet.EqualNodes(pw.Schema(), pf.Schema()) {
					return fmt.Errorf("%s: columns differ from those of %s", st.where(p), st.where(first))
				}
				for _, rg := range pf.RowGroups() {
					if _, err := pw.WriteRowGroup(rg); err != nil {
						return fmt.Errorf("%s: %w", st.where(p), err)
					}
				}
				return nil
			}()
			if err != nil {
				return err
			}
		}
		return pw.Close()
	})
}

func readParquet[T any](st store, name string, fn func(T) error) (err error) {
	f, pf, err := openParquet(st, name)
	if err != nil {
		return err
	}
	defer f.Close()
	path := st.where(name)
	// parquet-go fills columns missing from the file with zeros; a table read
	// with the wrong row type must fail instead.
	var missing []string
	for _, col := range parquet.SchemaOf(new(T)).Columns() {
		if _, ok := pf.Schema().Lookup(col...); !ok {
			missing = append(missing, strings.Join(col, "."))
		}
	}
	if len(missing) > 0 {
		return &missingColumnsError{path, missing}
	}
	var r *parquet.GenericReader[T]
	read := func(buf []T) (n int, err error) {
		defer catch(&err)
		if r == nil {
			r = parquet.NewGenericReader[T](pf)
		}
		return r.Read(buf)
	}
	defer func() {
		if r != nil {
			r.Close()
		}
	}()
	buf := make([]T, 1024)
	for {
		n, err := read(buf)
		for i := range n {
			if err := fn(buf[i]); err != nil {
				return err
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
	}
}
