package results

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"sync"
)

// codec maps a row struct to flat columns. The CSV header uses the names of
// the `parquet` tags, so both formats of a table have the same columns.
type codec struct {
	typ  reflect.Type
	cols []codecColumn
}

type codecColumn struct {
	name  string
	field int
	kind  reflect.Kind
}

var codecs sync.Map // reflect.Type -> *codec or error

func codecOf[T any]() (*codec, error) {
	t := reflect.TypeFor[T]()
	if c, ok := codecs.Load(t); ok {
		if err, bad := c.(error); bad {
			return nil, err
		}
		return c.(*codec), nil
	}
	c, err := newCodec(t)
	if err != nil {
		codecs.Store(t, err)
		return nil, err
	}
	codecs.Store(t, c)
	return c, nil
}

func newCodec(t reflect.Type) (*codec, error) {
	if t.Kind() != reflect.Struct {
		return nil, fmt.Errorf("row type %v is not a struct", t)
	}
	c := &codec{typ: t}
	seen := map[string]bool{}
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("parquet"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		switch f.Type.Kind() {
		case reflect.Bool, reflect.String, reflect.Float32, reflect.Float64,
			reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
			reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		default:
			return nil, fmt.Errorf("row type %v: field %s has type %v; tables hold only numbers, strings and bools", t, f.Name, f.Type)
		}
		if seen[name] {
			return nil, fmt.Errorf("row type %v: two fields are named %q", t, name)
		}
		seen[name] = true
		c.cols = append(c.cols, codecColumn{name: name, field: i, kind: f.Type.Kind()})
	}
	if len(c.cols) == 0 {
		return nil, fmt.Errorf("row type %v has no exported fields", t)
	}
	return c, nil
}

func (c *codec) header() []string {
	h := make([]string, len(c.cols))
	for i, col := range c.cols {
		h[i] = col.name
	}
	return h
}

func (c *codec) encode(rec []string, v reflect.Value) {
	for i, col := range c.cols {
		f := v.Field(col.field)
		switch col.kind {
		case reflect.Bool:
			rec[i] = strconv.FormatBool(f.Bool())
		case reflect.String:
			rec[i] = f.String()
		case reflect.Float32:
			rec[i] = strconv.FormatFloat(f.Float(), 'g', -1, 32)
		case reflect.Float64:
			rec[i] = strconv.FormatFloat(f.Float(), 'g', -1, 64)
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			rec[i] = strconv.FormatUint(f.Uint(), 10)
		default:
			rec[i] = strconv.FormatInt(f.Int(), 10)
		}
	}
}

// decode fills v from rec; at[i] is the record position of column i.
func (c *codec) decode(v reflect.Value, rec []string, at []int) error {
	for i, col := range c.cols {
		s := rec[at[i]]
		f := v.Field(col.field)
		bits := f.Type().Bits
		var err error
		switch col.kind {
		case reflect.Bool:
			var b bool
			b, err = strconv.ParseBool(s)
			f.SetBool(b)
		case reflect.String:
			f.SetString(s)
		case reflect.Float32, reflect.Float64:
			var x float64
			x, err = strconv.ParseFloat(s, bits())
			f.SetFloat(x)
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			var x uint64
			x, err = strconv.ParseUint(s, 10, bits())
			f.SetUint(x)
		default:
			var x int64
			x, err = strconv.ParseInt(s, 10, bits())
			f.SetInt(x)
		}
		if err != nil {
			return fmt.Errorf("column %s: %w", col.name, err)
		}
	}
	return nil
}

func writeCSV[T any](st store, name string, c *codec, rows []T) (partRecord, error) {
	return st.put(name, func(w io.Writer) error {
		cw := csv.NewWriter(w)
		if err := cw.Write(c.header()); err != nil {
			return err
		}
		rec := make([]string, len(c.cols))
		for i := range rows {
			c.encode(rec, reflect.ValueOf(&rows[i]).Elem())
			if err := cw.Write(rec); err != nil {
				return err
			}
		}
		cw.Flush()
		return cw.Error()
	})
}

// concatCSV keeps the first part's header line and appends every part's
// body, byte for byte.
func concatCSV(st store, dst string, parts []string) (partRecord, error) {
	if len(parts) == 0 {
		return partRecord{}, fmt.Errorf("%s: no parts to concatenate", st.where(dst))
	}
	var header string
	return st.put(dst, func(w io.Writer) error {
		for i, p := range parts {
			err := func() error {
				f, err := st.open(p)
				if err != nil {
					return err
				}
				defer f.Close()
				br := bufio.NewReaderSize(f, 1<<16)
				h, err := br.ReadString('\n')
				if err != nil {
					return fmt.Errorf("%s: no header line: %w", st.where(p), err)
				}
				if i == 0 {
					header = h
					if _, err := io.WriteString(w, h); err != nil {
						return err
					}
				} else if h != header {
					return fmt.Errorf("%s: header %q differs from %q of %s", st.where(p), strings.TrimSpace(h), strings.TrimSpace(header), parts[0])
				}
				_, err = io.Copy(w, br)
				return err
			}()
			if err != nil {
				return err
			}
		}
		return nil
	})
}

func readCSV[T any](st store, name string, fn func(T) error) error {
	c, err := codecOf[T]()
	if err != nil {
		return err
	}
	f, err := st.open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	path := st.where(name)
	cr := csv.NewReader(bufio.NewReaderSize(f, 1<<16))
	cr.ReuseRecord = true
	head, err := cr.Read()
	if err != nil {
		return fmt.Errorf("%s: reading header: %w", path, err)
	}
	pos := map[string]int{}
	for i, h := range head {
		pos[h] = i
	}
	at := make([]int, len(c.cols))
	var missing []string
	for i, col := range c.cols {
		p, ok := pos[col.name]
		if !ok {
			missing = append(missing, col.name)
		}
		at[i] = p
	}
	if len(missing) > 0 {
		return &missingColumnsError{path, missing}
	}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		var row T
		if err := c.decode(reflect.ValueOf(&row).Elem(), rec, at); err != nil {
			line, _ := cr.FieldPos(0)
			return fmt.Errorf("%s:%d: %w", path, line, err)
		}
		if err := fn(row); err != nil {
			return err
		}
	}
}
