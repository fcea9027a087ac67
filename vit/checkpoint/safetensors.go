package checkpoint

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"sort"

	"github.com/nlpodyssey/safetensors"

	"vitlens/vit"
)

// dtypeSize lists the safetensors dtypes we can widen to float32.
var dtypeSize = map[string]uint64{
	"F64": 8, "F32": 4, "F16": 2, "BF16": 2,
	"I64": 8, "I32": 4, "I16": 2, "I8": 1,
	"U64": 8, "U32": 4, "U16": 2, "U8": 1, "BOOL": 1,
}

// The library's own limit; checked here so the message is ours.
const maxSafetensorsHeader = 100_000_000

type stEntry struct {
	name  string
	dtype string
	shape []uint64
	begin uint64
	end   uint64
}

// readSafetensors validates the whole layout itself (checkSafetensors), so
// every defect gets a message that names the tensor, and then widens each
// tensor's bytes: the header is read once. github.com/nlpodyssey/safetensors,
// which read it again (with encoding/json, the slow part of loading a small
// model in the browser), is the twin the tests read the files with.
func readSafetensors(data []byte) (map[string]*vit.Tensor, map[string]string, error) {
	entries, meta, err := checkSafetensors(data)
	if err != nil {
		return nil, nil, err
	}
	body := data[8+binary.LittleEndian.Uint64(data):] // checkSafetensors checked the length
	tensors := make(map[string]*vit.Tensor, len(entries))
	for _, e := range entries {
		shape := make([]int, len(e.shape))
		for i, d := range e.shape {
			shape[i] = int(d) // checkSafetensors bounded every dim
		}
		vals, err := widen(e.dtype, body[e.begin:e.end])
		if err != nil {
			return nil, nil, fmt.Errorf("tensor %q: %w", e.name, err)
		}
		tensors[e.name] = &vit.Tensor{Shape: shape, Data: vals}
	}
	return tensors, meta, nil
}

func checkSafetensors(data []byte) ([]stEntry, map[string]string, error) {
	if len(data) < 8 {
		return nil, nil, fmt.Errorf("safetensors file too short for its 8-byte header length (%d bytes)", len(data))
	}
	n := binary.LittleEndian.Uint64(data)
	if n > uint64(len(data)-8) {
		return nil, nil, fmt.Errorf("safetensors header length %d runs beyond the end of the file (%d bytes): truncated or not safetensors", n, len(data))
	}
	if n > maxSafetensorsHeader {
		return nil, nil, fmt.Errorf("safetensors header of %d bytes exceeds the %d-byte limit", n, maxSafetensorsHeader)
	}
	entries, meta, ok := plainHeader(data[8 : 8+n])
	if !ok {
		var err error
		if entries, meta, err = jsonHeader(data[8 : 8+n]); err != nil {
			return nil, nil, err
		}
	}
	dataLen := uint64(len(data)) - 8 - n
	for _, e := range entries {
		size, ok := dtypeSize[e.dtype]
		if !ok {
			return nil, nil, fmt.Errorf("tensor %q has unknown dtype %q (supported: F64 F32 F16 BF16 and integers)", e.name, e.dtype)
		}
		numel := uint64(1)
		for _, d := range e.shape {
			hi, lo := bits.Mul64(numel, d)
			if hi != 0 || d > math.MaxInt32 {
				return nil, nil, fmt.Errorf("tensor %q has an impossible shape %v", e.name, e.shape)
			}
			numel = lo
		}
		hi, nbytes := bits.Mul64(numel, size)
		if hi != 0 {
			return nil, nil, fmt.Errorf("tensor %q has an impossible shape %v", e.name, e.shape)
		}
		switch {
		case e.end < e.begin:
			return nil, nil, fmt.Errorf("tensor %q: data_offsets [%d, %d] run backwards", e.name, e.begin, e.end)
		case e.end > dataLen:
			return nil, nil, fmt.Errorf("tensor %q: data_offsets [%d, %d] lie beyond the %d-byte data section (file truncated?)", e.name, e.begin, e.end, dataLen)
		case e.end-e.begin != nbytes:
			return nil, nil, fmt.Errorf("tensor %q: %s %v needs %d bytes but data_offsets [%d, %d] hold %d", e.name, e.dtype, e.shape, nbytes, e.begin, e.end, e.end-e.begin)
		}
	}
	// The format (and the library) wants the tensors to tile the data
	// section exactly: no overlap, no gap, nothing after.
	sort.Slice(entries, func(i, j int) bool {
		a, b := entries[i], entries[j]
		return a.begin < b.begin || (a.begin == b.begin && a.end < b.end)
	})
	at, prev := uint64(0), ""
	for _, e := range entries {
		switch {
		case e.begin < at:
			return nil, nil, fmt.Errorf("tensors %q and %q overlap (bytes %d..%d)", prev, e.name, e.begin, at)
		case e.begin > at:
			return nil, nil, fmt.Errorf("data bytes %d..%d (before tensor %q) belong to no tensor", at, e.begin, e.name)
		}
		at, prev = e.end, e.name
	}
	if at != dataLen {
		return nil, nil, fmt.Errorf("%d bytes after the last tensor's data: not a clean safetensors file", dataLen-at)
	}
	return entries, meta, nil
}

// widen converts little-endian values of a safetensors dtype to float32.
func widen(dtype string, b []byte) ([]float32, error) {
	size, read := int(dtypeSize[dtype]), readers[dtype]
	if read == nil || len(b)%size != 0 {
		return nil, fmt.Errorf("dtype %s with %d bytes", dtype, len(b))
	}
	out := make([]float32, len(b)/size)
	if dtype == "F32" { // nearly every checkpoint: one loop the compiler keeps tight
		for i := range out {
			out[i] = math.Float32frombits(le.Uint32(b[4*i:]))
		}
		return out, nil
	}
	for i := range out {
		out[i] = read(b[i*size:])
	}
	return out, nil
}

var le = binary.LittleEndian

// readers decode one little-endian value of each dtype in dtypeSize.
var readers = map[string]func(p []byte) float32{
	"F32":  func(p []byte) float32 { return math.Float32frombits(le.Uint32(p)) },
	"F16":  func(p []byte) float32 { return HalfToFloat(le.Uint16(p)) },
	"BF16": func(p []byte) float32 { return math.Float32frombits(uint32(le.Uint16(p)) << 16) },
	"F64":  func(p []byte) float32 { return float32(math.Float64frombits(le.Uint64(p))) },
	"I64":  func(p []byte) float32 { return float32(int64(le.Uint64(p))) },
	"I32":  func(p []byte) float32 { return float32(int32(le.Uint32(p))) },
	"I16":  func(p []byte) float32 { return float32(int16(le.Uint16(p))) },
	"I8":   func(p []byte) float32 { return float32(int8(p[0])) },
	"U64":  func(p []byte) float32 { return float32(le.Uint64(p)) },
	"U32":  func(p []byte) float32 { return float32(le.Uint32(p)) },
	"U16":  func(p []byte) float32 { return float32(le.Uint16(p)) },
	"U8":   func(p []byte) float32 { return float32(p[0]) },
	"BOOL": func(p []byte) float32 { return float32(p[0]) },
}

// HalfToFloat widens an IEEE 754 binary16 value exactly (activations.Float16
// rounds the other way).
func HalfToFloat(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h & 0x3ff)
	switch exp {
	case 0: // zero or subnormal: mant·2⁻²⁴, exact in float32
		v := float32(mant) * (1.0 / (1 << 24))
		return math.Float32frombits(math.Float32bits(v) | sign)
	case 0x1f: // inf or NaN
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	}
	return math.Float32frombits(sign | (exp+112)<<23 | mant<<13)
}

// EncodeSafetensors writes float32 tensors and string metadata as a
// safetensors file (tensors in name order, so equal inputs give equal
// bytes): the format our own outputs (translator files) are saved in.
func EncodeSafetensors(tensors map[string]*vit.Tensor, meta map[string]string) ([]byte, error) {
	views := make(map[string]safetensors.TensorView, len(tensors))
	for name, t := range tensors {
		shape := make([]uint64, len(t.Shape))
		for i, d := range t.Shape {
			shape[i] = uint64(d)
		}
		raw := make([]byte, 0, 4*len(t.Data))
		for _, v := range t.Data {
			raw = binary.LittleEndian.AppendUint32(raw, math.Float32bits(v))
		}
		v, err := safetensors.NewTensorView(safetensors.F32, shape, raw)
		if err != nil {
			return nil, fmt.Errorf("tensor %q: %w", name, err)
		}
		views[name] = v
	}
	return safetensors.Serialize(views, meta)
}
