package engine

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"unsafe"

	"vitlens/vit"
)

// The wire format between the page and the engine's worker: one byte
// buffer per message, sent as a transferable ArrayBuffer.
//
//	uint32 length of the structure section (little-endian)
//	the structure: exported fields in declaration order, as varints,
//	  strings and byte strings, with a presence byte for pointers
//	padding to a multiple of 4
//	every []float32 and []int32 of the value, back to back, as
//	  little-endian 4-byte words
//
// The word section is most of the bytes (weights, attention maps, the
// readouts' ranks and top classes, the top memories): it is copied once and
// the decoded slices point into it, so a message costs one copy instead of
// a parse per number. gob would
// encode each float separately and refuses nil pointers inside slices,
// which traces have. Unexported fields are not sent (caches, such as the CPU's
// packed weights, are rebuilt where they are used); interfaces, maps with
// non-string keys, funcs and channels are refused.

// Encode serialises v (a pointer to a struct, or a struct).
func Encode(v any) ([]byte, error) {
	e := &encoder{}
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Pointer {
		if rv.IsNil() {
			return nil, errors.New("engine: encode of a nil pointer")
		}
		rv = rv.Elem() // Decode fills the pointed-to value
	}
	if err := e.value(rv); err != nil {
		return nil, err
	}
	head := 4 + len(e.meta)
	pad := (4 - head%4) % 4
	out := make([]byte, head+pad, head+pad+4*e.nfloats)
	binary.LittleEndian.PutUint32(out, uint32(len(e.meta)))
	copy(out[4:], e.meta)
	for _, f := range e.floats {
		out = append(out, float32Bytes(f)...)
	}
	return out, nil
}

// Decode fills v (a pointer) from a message made by Encode. The decoded
// []float32 and []int32 slices alias data, which must not be reused
// afterwards.
func Decode(data []byte, v any) error {
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return errors.New("engine: decode into a non-nil pointer")
	}
	if len(data) < 4 {
		return errors.New("engine: message too short")
	}
	n := int(binary.LittleEndian.Uint32(data))
	if n > len(data)-4 {
		return errors.New("engine: message truncated")
	}
	head := 4 + n
	head += (4 - head%4) % 4
	if head > len(data) {
		return errors.New("engine: message truncated")
	}
	d := &decoder{meta: data[4 : 4+n], floats: bytesFloat32(data[head:])}
	if err := d.value(rv.Elem()); err != nil {
		return err
	}
	if len(d.meta) != 0 || len(d.floats) != 0 {
		return errors.New("engine: trailing data in message")
	}
	return nil
}

// float32Bytes views a float32 slice as its bytes (wasm and every platform
// vitlens builds for are little-endian).
func float32Bytes(f []float32) []byte {
	if len(f) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&f[0])), 4*len(f))
}

// bytesFloat32 views a byte slice as float32s; it copies only when the
// bytes are not 4-aligned in memory.
func bytesFloat32(b []byte) []float32 {
	if len(b) == 0 {
		return nil
	}
	if uintptr(unsafe.Pointer(&b[0]))%4 != 0 {
		c := make([]float32, len(b)/4)
		for i := range c {
			c[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		}
		return c
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(&b[0])), len(b)/4)
}

var (
	float32SliceType = reflect.TypeFor[[]float32]()
	int32SliceType   = reflect.TypeFor[[]int32]()
)

// words views a []float32 or []int32 value as float32s: the word section
// holds both, bit for bit.
func words(v reflect.Value) []float32 {
	if v.Type() == float32SliceType {
		return v.Interface().([]float32)
	}
	s := v.Interface().([]int32)
	return unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(s))), len(s))
}

// asType returns the words w as a value of type t, []float32 or []int32,
// sharing their memory.
func asType(w []float32, t reflect.Type) reflect.Value {
	if t == float32SliceType {
		return reflect.ValueOf(w)
	}
	return reflect.ValueOf(unsafe.Slice((*int32)(unsafe.Pointer(unsafe.SliceData(w))), len(w)))
}

// A vit.Linear keeps its weights in the CPU GEMM's packed form, which is
// not exported: it travels as its PyTorch-layout matrix and is packed again
// on arrival, as every model is where it is made (vit.Model.Pack).
var linearType = reflect.TypeFor[vit.Linear]()

type linearWire struct {
	In, Out int
	W, B    []float32
}

type encoder struct {
	meta    []byte
	floats  [][]float32
	nfloats int
}

func (e *encoder) uvarint(x uint64) { e.meta = binary.AppendUvarint(e.meta, x) }
func (e *encoder) varint(x int64)   { e.meta = binary.AppendVarint(e.meta, x) }
func (e *encoder) bytes(b []byte)   { e.uvarint(uint64(len(b))); e.meta = append(e.meta, b...) }

func (e *encoder) value(v reflect.Value) error {
	if v.Type() == linearType {
		l := v.Interface().(vit.Linear)
		return e.value(reflect.ValueOf(linearWire{In: l.In, Out: l.Out, W: l.Weights(), B: l.B}))
	}
	if t := v.Type(); t == float32SliceType || t == int32SliceType {
		f := words(v)
		e.uvarint(uint64(len(f)))
		if v.IsNil() {
			e.meta = append(e.meta, 0)
			return nil
		}
		e.meta = append(e.meta, 1)
		e.floats = append(e.floats, f)
		e.nfloats += len(f)
		return nil
	}
	switch v.Kind() {
	case reflect.Bool:
		if v.Bool() {
			e.meta = append(e.meta, 1)
		} else {
			e.meta = append(e.meta, 0)
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		e.varint(v.Int())
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		e.uvarint(v.Uint())
	case reflect.Float32, reflect.Float64:
		e.uvarint(math.Float64bits(v.Float()))
	case reflect.String:
		e.bytes([]byte(v.String()))
	case reflect.Pointer:
		if v.IsNil() {
			e.meta = append(e.meta, 0)
			return nil
		}
		e.meta = append(e.meta, 1)
		return e.value(v.Elem())
	case reflect.Slice:
		if v.IsNil() {
			e.meta = append(e.meta, 0)
			return nil
		}
		e.meta = append(e.meta, 1)
		if v.Type().Elem().Kind() == reflect.Uint8 {
			e.bytes(v.Bytes())
			return nil
		}
		e.uvarint(uint64(v.Len()))
		for i := range v.Len() {
			if err := e.value(v.Index(i)); err != nil {
				return err
			}
		}
	case reflect.Array:
		for i := range v.Len() {
			if err := e.value(v.Index(i)); err != nil {
				return err
			}
		}
	case reflect.Map:
		if v.Type().Key().Kind() != reflect.String {
			return fmt.Errorf("engine: cannot send %s", v.Type())
		}
		if v.IsNil() {
			e.meta = append(e.meta, 0)
			return nil
		}
		e.meta = append(e.meta, 1)
		e.uvarint(uint64(v.Len()))
		keys := v.MapKeys()
		// Sorted, so a value always encodes to the same bytes.
		slices.SortFunc(keys, func(a, b reflect.Value) int { return strings.Compare(a.String(), b.String()) })
		for _, k := range keys {
			e.bytes([]byte(k.String()))
			if err := e.value(v.MapIndex(k)); err != nil {
				return err
			}
		}
	case reflect.Struct:
		t := v.Type()
		for i := range t.NumField() {
			if t.Field(i).IsExported() {
				if err := e.value(v.Field(i)); err != nil {
					return fmt.Errorf("%s.%s: %w", t.Name(), t.Field(i).Name, err)
				}
			}
		}
	default:
		return fmt.Errorf("engine: cannot send %s", v.Type())
	}
	return nil
}

type decoder struct {
	meta   []byte
	floats []float32
}

var errCorrupt = errors.New("engine: corrupt message")

func (d *decoder) uvarint() (uint64, error) {
	x, n := binary.Uvarint(d.meta)
	if n <= 0 {
		return 0, errCorrupt
	}
	d.meta = d.meta[n:]
	return x, nil
}

func (d *decoder) varint() (int64, error) {
	x, n := binary.Varint(d.meta)
	if n <= 0 {
		return 0, errCorrupt
	}
	d.meta = d.meta[n:]
	return x, nil
}

// length reads a count and checks it against what is left, so a corrupt
// message cannot ask for a huge allocation.
func (d *decoder) length(left int) (int, error) {
	n, err := d.uvarint()
	if err != nil || n > uint64(left) {
		return 0, errCorrupt
	}
	return int(n), nil
}

func (d *decoder) byteString() ([]byte, error) {
	n, err := d.length(len(d.meta))
	if err != nil {
		return nil, err
	}
	b := d.meta[:n:n]
	d.meta = d.meta[n:]
	return b, nil
}

func (d *decoder) flag() (bool, error) {
	if len(d.meta) == 0 || d.meta[0] > 1 {
		return false, errCorrupt
	}
	f := d.meta[0] == 1
	d.meta = d.meta[1:]
	return f, nil
}

func (d *decoder) value(v reflect.Value) error {
	if v.Type() == linearType {
		var w linearWire
		if err := d.value(reflect.ValueOf(&w).Elem()); err != nil {
			return err
		}
		if w.In < 0 || w.Out < 0 || len(w.W) != w.In*w.Out {
			return errCorrupt
		}
		l := vit.Linear{In: w.In, Out: w.Out, W: w.W, B: w.B}
		l.Pack()
		v.Set(reflect.ValueOf(l))
		return nil
	}
	if t := v.Type(); t == float32SliceType || t == int32SliceType {
		n, err := d.length(len(d.floats))
		if err != nil {
			return err
		}
		present, err := d.flag()
		if err != nil || !present {
			return err
		}
		v.Set(asType(d.floats[:n:n], t))
		d.floats = d.floats[n:]
		return nil
	}
	switch v.Kind() {
	case reflect.Bool:
		b, err := d.flag()
		v.SetBool(b)
		return err
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		x, err := d.varint()
		v.SetInt(x)
		return err
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		x, err := d.uvarint()
		v.SetUint(x)
		return err
	case reflect.Float32, reflect.Float64:
		x, err := d.uvarint()
		v.SetFloat(math.Float64frombits(x))
		return err
	case reflect.String:
		b, err := d.byteString()
		v.SetString(string(b))
		return err
	case reflect.Pointer:
		present, err := d.flag()
		if err != nil || !present {
			return err
		}
		p := reflect.New(v.Type().Elem())
		if err := d.value(p.Elem()); err != nil {
			return err
		}
		v.Set(p)
	case reflect.Slice:
		present, err := d.flag()
		if err != nil || !present {
			return err
		}
		if v.Type().Elem().Kind() == reflect.Uint8 {
			b, err := d.byteString()
			if err != nil {
				return err
			}
			s := reflect.MakeSlice(v.Type(), len(b), len(b))
			reflect.Copy(s, reflect.ValueOf(b))
			v.Set(s)
			return nil
		}
		n, err := d.length(len(d.meta)) // every element takes at least a byte
		if err != nil {
			return err
		}
		s := reflect.MakeSlice(v.Type(), n, n)
		for i := range n {
			if err := d.value(s.Index(i)); err != nil {
				return err
			}
		}
		v.Set(s)
	case reflect.Array:
		for i := range v.Len() {
			if err := d.value(v.Index(i)); err != nil {
				return err
			}
		}
	case reflect.Map:
		if v.Type().Key().Kind() != reflect.String {
			return fmt.Errorf("engine: cannot receive %s", v.Type())
		}
		present, err := d.flag()
		if err != nil || !present {
			return err
		}
		n, err := d.length(len(d.meta))
		if err != nil {
			return err
		}
		m := reflect.MakeMapWithSize(v.Type(), n)
		for range n {
			k, err := d.byteString()
			if err != nil {
				return err
			}
			e := reflect.New(v.Type().Elem()).Elem()
			if err := d.value(e); err != nil {
				return err
			}
			m.SetMapIndex(reflect.ValueOf(string(k)).Convert(v.Type().Key()), e)
		}
		v.Set(m)
	case reflect.Struct:
		t := v.Type()
		for i := range t.NumField() {
			if t.Field(i).IsExported() {
				if err := d.value(v.Field(i)); err != nil {
					return fmt.Errorf("%s.%s: %w", t.Name(), t.Field(i).Name, err)
				}
			}
		}
	default:
		return fmt.Errorf("engine: cannot receive %s", v.Type())
	}
	return nil
}
