package checkpoint

import (
	"bytes"
	"encoding/json"
	"fmt"
	"unicode/utf16"
	"unicode/utf8"
)

// A safetensors header is JSON: {"name": {"dtype": "F32", "shape": [2, 3],
// "data_offsets": [0, 24]}, ..., "__metadata__": {"key": "value", ...}}.
// Every writer writes it plainly (no nulls, no repeated keys, the keys in
// lower case), and plainHeader reads exactly that form with a scanner of
// its own. In the
// browser that matters: the engine's worker reads the demo's header as it
// starts, when each function it runs for the first time is compiled, and
// encoding/json (reflection, the decoder's state machine) was most of the
// checkpoint's read. jsonHeader, encoding/json's reading, is the twin: it
// reads whatever plainHeader declines (nulls, keys in other case, repeats,
// surrogate escapes, malformed input) and words every error, and the tests check
// that both agree wherever plainHeader answers.

// plainHeader reads a header in the plain form; ok is false for anything
// else, which jsonHeader then reads or rejects.
func plainHeader(h []byte) (entries []stEntry, meta map[string]string, ok bool) {
	s := headerScanner{b: h}
	if !s.take('{') {
		return nil, nil, false
	}
	seen := map[string]bool{}
	if s.take('}') {
		return entries, nil, s.end()
	}
	for {
		name, ok := s.str()
		if !ok || seen[name] || !s.take(':') {
			return nil, nil, false
		}
		seen[name] = true
		if name == "__metadata__" {
			if meta, ok = s.stringMap(); !ok {
				return nil, nil, false
			}
		} else {
			e, ok := s.entry()
			if !ok {
				return nil, nil, false
			}
			e.name = name
			entries = append(entries, e)
		}
		if s.take('}') {
			return entries, meta, s.end()
		}
		if !s.take(',') {
			return nil, nil, false
		}
	}
}

// headerScanner walks a header's bytes; each method skips the whitespace
// before what it reads and reports whether it found it.
type headerScanner struct {
	b []byte
	i int
}

func (s *headerScanner) space() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// take consumes the byte c.
func (s *headerScanner) take(c byte) bool {
	s.space()
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// end reports whether only whitespace is left (writers pad with spaces).
func (s *headerScanner) end() bool {
	s.space()
	return s.i == len(s.b)
}

// str reads a string the way encoding/json does, declining what it would
// read differently or reject: control characters, bytes that are not UTF-8,
// \u escapes of surrogates (which it pairs or replaces).
func (s *headerScanner) str() (string, bool) {
	if !s.take('"') {
		return "", false
	}
	start := s.i
	var out []byte // the value, once an escape made it differ from the bytes
	for s.i < len(s.b) {
		c := s.b[s.i]
		switch {
		case c == '"':
			raw := s.b[start:s.i]
			s.i++
			if !utf8.Valid(raw) {
				return "", false
			}
			if out != nil {
				return string(append(out, raw...)), true
			}
			return string(raw), true
		case c < 0x20:
			return "", false
		case c == '\\':
			if !utf8.Valid(s.b[start:s.i]) || s.i+1 >= len(s.b) {
				return "", false
			}
			out = append(out, s.b[start:s.i]...)
			n := 2
			switch e := s.b[s.i+1]; e {
			case '"', '\\', '/':
				out = append(out, e)
			case 'b':
				out = append(out, '\b')
			case 'f':
				out = append(out, '\f')
			case 'n':
				out = append(out, '\n')
			case 'r':
				out = append(out, '\r')
			case 't':
				out = append(out, '\t')
			case 'u':
				r, ok := hex4(s.b[s.i+2:])
				if !ok || utf16.IsSurrogate(r) {
					return "", false
				}
				out, n = utf8.AppendRune(out, r), 6
			default:
				return "", false
			}
			s.i += n
			start = s.i
			continue
		}
		s.i++
	}
	return "", false
}

// hex4 reads the four hex digits of a \u escape.
func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// uint reads a number that is a plain non-negative integer in JSON's
// grammar (no sign, fraction, exponent or leading zero) and fits uint64.
func (s *headerScanner) uint() (uint64, bool) {
	s.space()
	start := s.i
	var v uint64
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		d := uint64(s.b[s.i] - '0')
		if v > (1<<64-1-d)/10 {
			return 0, false
		}
		v = 10*v + d
		s.i++
	}
	n := s.i - start
	if n == 0 || (n > 1 && s.b[start] == '0') {
		return 0, false
	}
	if s.i < len(s.b) {
		switch s.b[s.i] {
		case '.', 'e', 'E':
			return 0, false
		}
	}
	return v, true
}

// uints reads an array of uints.
func (s *headerScanner) uints() ([]uint64, bool) {
	if !s.take('[') {
		return nil, false
	}
	out := []uint64{}
	if s.take(']') {
		return out, true
	}
	for {
		v, ok := s.uint()
		if !ok {
			return nil, false
		}
		out = append(out, v)
		if s.take(']') {
			return out, true
		}
		if !s.take(',') {
			return nil, false
		}
	}
}

// entry reads a tensor's {"dtype", "shape", "data_offsets"}: each key
// once, all three, two offsets.
func (s *headerScanner) entry() (stEntry, bool) {
	var e stEntry
	if !s.take('{') {
		return e, false
	}
	var haveDtype, haveShape, haveOffsets bool
	for {
		key, ok := s.str()
		if !ok || !s.take(':') {
			return e, false
		}
		switch {
		case key == "dtype" && !haveDtype:
			e.dtype, ok = s.str()
			haveDtype = true
		case key == "shape" && !haveShape:
			e.shape, ok = s.uints()
			haveShape = true
		case key == "data_offsets" && !haveOffsets:
			var off []uint64
			off, ok = s.uints()
			ok = ok && len(off) == 2
			if ok {
				e.begin, e.end = off[0], off[1]
			}
			haveOffsets = true
		default:
			return e, false
		}
		if !ok {
			return e, false
		}
		if s.take('}') {
			return e, haveDtype && haveShape && haveOffsets
		}
		if !s.take(',') {
			return e, false
		}
	}
}

// stringMap reads {"key": "value", ...}, each key once.
func (s *headerScanner) stringMap() (map[string]string, bool) {
	if !s.take('{') {
		return nil, false
	}
	m := map[string]string{}
	if s.take('}') {
		return m, true
	}
	for {
		k, ok := s.str()
		if !ok || !s.take(':') {
			return nil, false
		}
		if _, repeated := m[k]; repeated {
			return nil, false
		}
		v, ok := s.str()
		if !ok {
			return nil, false
		}
		m[k] = v
		if s.take('}') {
			return m, true
		}
		if !s.take(',') {
			return nil, false
		}
	}
}

// jsonHeader reads a header with encoding/json: plainHeader's twin, and
// the reader of every header plainHeader declines, with the messages.
func jsonHeader(h []byte) ([]stEntry, map[string]string, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(h, &raw); err != nil {
		return nil, nil, fmt.Errorf("safetensors header is not a JSON object: %v", err)
	}
	var meta map[string]string
	entries := make([]stEntry, 0, len(raw))
	for name, msg := range raw {
		if name == "__metadata__" {
			if err := json.Unmarshal(msg, &meta); err != nil {
				return nil, nil, fmt.Errorf("safetensors __metadata__ must map strings to strings: %v", err)
			}
			continue
		}
		var e struct {
			Dtype   *string   `json:"dtype"`
			Shape   *[]uint64 `json:"shape"`
			Offsets *[]uint64 `json:"data_offsets"`
		}
		dec := json.NewDecoder(bytes.NewReader(msg))
		dec.DisallowUnknownFields() // the library wants exactly these 3 keys
		if err := dec.Decode(&e); err != nil {
			return nil, nil, fmt.Errorf("tensor %q: bad header entry: %v", name, err)
		}
		if e.Dtype == nil || e.Shape == nil || e.Offsets == nil {
			return nil, nil, fmt.Errorf("tensor %q: header entry needs dtype, shape and data_offsets", name)
		}
		if len(*e.Offsets) != 2 {
			return nil, nil, fmt.Errorf("tensor %q: data_offsets has %d numbers, want 2", name, len(*e.Offsets))
		}
		entries = append(entries, stEntry{name, *e.Dtype, *e.Shape, (*e.Offsets)[0], (*e.Offsets)[1]})
	}
	return entries, meta, nil
}
