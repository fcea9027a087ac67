package checkpoint

import (
	"encoding/binary"
	"math"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/nlpodyssey/safetensors"
)

// headerOf is a safetensors file's JSON header.
func headerOf(t testing.TB, file []byte) []byte {
	t.Helper()
	if len(file) < 8 {
		t.Fatalf("%d bytes: no header", len(file))
	}
	n := binary.LittleEndian.Uint64(file)
	return file[8 : 8+n]
}

// safetensorsSeeds are real headers: the files in testdata, the demo model
// the page loads, and the library's writing in three dtypes.
func safetensorsSeeds(t testing.TB) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	for _, path := range []string{"testdata/tv_tiny.safetensors", "../../public/models/fmnist-vit.safetensors"} {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		files[path] = data
	}
	small := tinyConfig()
	for _, dt := range []safetensors.DType{safetensors.F32, safetensors.F16, safetensors.BF16} {
		files["timm "+dt.String()] = safetensorsFile(t, exportTimm(randomModel(t, small)), map[string]string{"config": configJSON(small), "é": "ü"}, dt)
	}
	return files
}

// sameHeader reports whether two readings of a header agree, in any order.
func sameHeader(a, b []stEntry, metaA, metaB map[string]string) bool {
	byName := func(x, y stEntry) int { return strings.Compare(x.name, y.name) }
	a, b = slices.Clone(a), slices.Clone(b)
	slices.SortFunc(a, byName)
	slices.SortFunc(b, byName)
	return len(a) == len(b) && (len(a) == 0 || reflect.DeepEqual(a, b)) &&
		(metaA == nil) == (metaB == nil) && reflect.DeepEqual(metaA, metaB)
}

// TestPlainHeader: plainHeader reads the headers writers write, as
// encoding/json does, and declines the rest (escapes, nulls, keys in other
// case, repeated keys, malformed JSON), which jsonHeader then reads or
// rejects with its message.
func TestPlainHeader(t *testing.T) {
	plain := map[string]string{
		"empty":    `{}`,
		"padded":   "{\"a\": {\"dtype\": \"F32\", \"shape\": [], \"data_offsets\": [0, 4]}}   ",
		"keys":     `{"a":{"data_offsets":[0,24],"shape":[2,3],"dtype":"F32"},"__metadata__":{}}`,
		"spaces":   "\t{ \"a\" :\n{ \"dtype\":\"I8\" , \"shape\" : [ 0 ] , \"data_offsets\" : [ 0 , 0 ] } }\r\n",
		"big":      `{"a":{"dtype":"U8","shape":[18446744073709551615],"data_offsets":[0,1]}}`,
		"metadata": `{"__metadata__":{"k":"v w","ü":"→"},"b":{"dtype":"F16","shape":[1],"data_offsets":[0,2]}}`,
		"escapes":  `{"a\u0062\u00e9":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"__metadata__":{"k":"\"\\\/\b\f\n\r\t\u20AC","é\n":"x"}}`,
	}
	for name, data := range safetensorsSeeds(t) {
		plain[name] = string(headerOf(t, data))
	}
	declined := map[string]string{
		"surrogate":        `{"__metadata__":{"k":"\ud83d\ude00"}}`,
		"lone surrogate":   `{"__metadata__":{"k":"\ud800"}}`,
		"bad escape":       `{"__metadata__":{"k":"\x41"}}`,
		"short escape":     `{"__metadata__":{"k":"\u41"}}`,
		"other case":       `{"a":{"DType":"F32","shape":[1],"data_offsets":[0,4]}}`,
		"null entry":       `{"a":null}`,
		"null dtype":       `{"a":{"dtype":null,"shape":[1],"data_offsets":[0,4]}}`,
		"null metadata":    `{"__metadata__":null}`,
		"null value":       `{"__metadata__":{"k":null}}`,
		"null header":      `null`,
		"repeated tensor":  `{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`,
		"repeated key":     `{"a":{"dtype":"F32","dtype":"F16","shape":[1],"data_offsets":[0,4]}}`,
		"repeated meta":    `{"__metadata__":{"k":"1","k":"2"}}`,
		"missing key":      `{"a":{"dtype":"F32","shape":[1]}}`,
		"extra key":        `{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":1}}`,
		"three offsets":    `{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}}`,
		"negative":         `{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}`,
		"fraction":         `{"a":{"dtype":"F32","shape":[1.0],"data_offsets":[0,4]}}`,
		"exponent":         `{"a":{"dtype":"F32","shape":[1e0],"data_offsets":[0,4]}}`,
		"leading zero":     `{"a":{"dtype":"F32","shape":[01],"data_offsets":[0,4]}}`,
		"overflow":         `{"a":{"dtype":"F32","shape":[18446744073709551616],"data_offsets":[0,4]}}`,
		"metadata number":  `{"__metadata__":{"k":1}}`,
		"trailing comma":   `{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},}`,
		"trailing garbage": `{} x`,
		"control char":     "{\"a\tb\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
		"bad utf-8":        "{\"a\xff\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}",
		"not an object":    `[1]`,
		"truncated":        `{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]`,
	}
	for name, h := range plain {
		entries, meta, ok := plainHeader([]byte(h))
		if !ok {
			t.Errorf("%s: plainHeader declined a plain header: %.200s", name, h)
			continue
		}
		twinEntries, twinMeta, err := jsonHeader([]byte(h))
		if err != nil {
			t.Errorf("%s: plainHeader read what encoding/json rejects (%v)", name, err)
			continue
		}
		if !sameHeader(entries, twinEntries, meta, twinMeta) {
			t.Errorf("%s: plainHeader read\n%v %v\nencoding/json\n%v %v", name, entries, meta, twinEntries, twinMeta)
		}
	}
	for name, h := range declined {
		if entries, meta, ok := plainHeader([]byte(h)); ok {
			t.Errorf("%s: plainHeader read %s as %v %v: it should leave it to encoding/json", name, h, entries, meta)
		}
	}
}

// FuzzPlainHeader: wherever plainHeader answers, encoding/json reads the
// same header and agrees.
func FuzzPlainHeader(f *testing.F) {
	for _, data := range safetensorsSeeds(f) {
		f.Add(headerOf(f, data))
	}
	f.Add([]byte(`{"__metadata__":{"k":"v"},"a":{"dtype":"F32","shape":[],"data_offsets":[0,4]}}`))
	f.Fuzz(func(t *testing.T, h []byte) {
		entries, meta, ok := plainHeader(h)
		if !ok {
			return
		}
		twinEntries, twinMeta, err := jsonHeader(h)
		if err != nil {
			t.Fatalf("plainHeader read %q, which encoding/json rejects: %v", h, err)
		}
		if !sameHeader(entries, twinEntries, meta, twinMeta) {
			t.Fatalf("%q: plainHeader read %v %v, encoding/json %v %v", h, entries, meta, twinEntries, twinMeta)
		}
	})
}

// TestReadSafetensorsMatchesLibrary: the reader, which reads the header
// once itself, gives every tensor exactly as github.com/nlpodyssey/safetensors
// reads it (TestPlainHeader checks the metadata).
func TestReadSafetensorsMatchesLibrary(t *testing.T) {
	for name, data := range safetensorsSeeds(t) {
		tensors, _, err := readSafetensors(data)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		st, err := safetensors.Deserialize(data)
		if err != nil {
			t.Fatalf("%s: the library: %v", name, err)
		}
		if len(tensors) != len(st.Tensors()) {
			t.Errorf("%s: %d tensors, the library reads %d", name, len(tensors), len(st.Tensors()))
		}
		for _, nt := range st.Tensors() {
			got := tensors[nt.Name]
			if got == nil {
				t.Errorf("%s: tensor %q missing", name, nt.Name)
				continue
			}
			want, err := widen(nt.TensorView.DType().String(), nt.TensorView.Data())
			if err != nil {
				t.Fatal(err)
			}
			var shape []int
			for _, d := range nt.TensorView.Shape() {
				shape = append(shape, int(d))
			}
			// Bit for bit: the dtypes' NaNs widen to NaNs, which == does not match.
			if !slices.Equal(got.Shape, shape) || !slices.EqualFunc(got.Data, want, func(a, b float32) bool {
				return math.Float32bits(a) == math.Float32bits(b)
			}) {
				t.Errorf("%s: tensor %q: shape %v, the library's %v, or its values differ", name, nt.Name, got.Shape, shape)
			}
		}
	}
}
