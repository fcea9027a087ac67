package vittest

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/nlpodyssey/safetensors"

	"vitlens/vit"
)

// Golden is one safetensors file written by the PyTorch reference scripts
// (tools/reference/make_golden.py, tools/train/train_fmnist.py).
type Golden struct {
	Path string
	Meta map[string]string
	st   safetensors.SafeTensors
}

// OpenGolden reads a whole safetensors file. Errors name the file.
func OpenGolden(path string) (*Golden, error) {
	buf, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	st, err := safetensors.Deserialize(buf)
	if err != nil {
		return nil, fmt.Errorf("%s: not a valid safetensors file: %w", path, err)
	}
	// Deserialize keeps the __metadata__ map private; ReadMetadata exposes it.
	_, meta, err := safetensors.ReadMetadata(buf)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &Golden{Path: path, Meta: meta.Metadata(), st: st}, nil
}

// Load opens testdata/reference/<fixture>/<file> (file defaults to
// golden.safetensors) and fails the test if it cannot.
func Load(t testing.TB, fixture string, file ...string) *Golden {
	t.Helper()
	name := "golden.safetensors"
	if len(file) > 0 {
		name = file[0]
	}
	dir, err := ReferenceDir()
	if err != nil {
		t.Fatal(err)
	}
	g, err := OpenGolden(filepath.Join(dir, fixture, name))
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// Names lists the tensors in the file, sorted.
func (g *Golden) Names() []string {
	n := g.st.Names()
	sort.Strings(n)
	return n
}

// Has reports whether the file holds a tensor of that name.
func (g *Golden) Has(name string) bool {
	_, ok := g.st.Tensor(name)
	return ok
}

// Tensor returns a float32 tensor by name.
func (g *Golden) Tensor(name string) (*vit.Tensor, error) {
	tv, ok := g.st.Tensor(name)
	if !ok {
		return nil, fmt.Errorf("%s: no tensor %q", g.Path, name)
	}
	if tv.DType() != safetensors.F32 {
		return nil, fmt.Errorf("%s: tensor %q is %v, want F32", g.Path, name, tv.DType())
	}
	shape := make([]int, len(tv.Shape()))
	for i, d := range tv.Shape() {
		shape[i] = int(d)
	}
	t := vit.NewTensor(shape...)
	raw := tv.Data()
	for i := range t.Data {
		t.Data[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:]))
	}
	return t, nil
}

// Int64s returns an int64 tensor (e.g. keep.tokens.<i>) flattened.
func (g *Golden) Int64s(name string) ([]int64, error) {
	tv, ok := g.st.Tensor(name)
	if !ok {
		return nil, fmt.Errorf("%s: no tensor %q", g.Path, name)
	}
	if tv.DType() != safetensors.I64 {
		return nil, fmt.Errorf("%s: tensor %q is %v, want I64", g.Path, name, tv.DType())
	}
	raw := tv.Data()
	out := make([]int64, len(raw)/8)
	for i := range out {
		out[i] = int64(binary.LittleEndian.Uint64(raw[8*i:]))
	}
	return out, nil
}

// Config decodes the vit.Config the script recorded in __metadata__["config"].
func (g *Golden) Config() (vit.Config, error) {
	var c vit.Config
	s, ok := g.Meta["config"]
	if !ok {
		return c, fmt.Errorf("%s: no \"config\" in __metadata__", g.Path)
	}
	if err := json.Unmarshal([]byte(s), &c); err != nil {
		return c, fmt.Errorf("%s: bad config metadata: %w", g.Path, err)
	}
	return c, c.Validate()
}

// MustTensor is Tensor for tests.
func (g *Golden) MustTensor(t testing.TB, name string) *vit.Tensor {
	t.Helper()
	x, err := g.Tensor(name)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// ReferenceDir finds <module root>/testdata/reference from the working
// directory, which `go test` sets to the package being tested.
func ReferenceDir() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "testdata", "reference"), nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory; cannot find testdata/reference")
		}
		dir = parent
	}
}

// MaxAbsDiff is the largest |a[i]-b[i]|; +Inf when the lengths differ so a
// shape mistake never passes a tolerance check.
func MaxAbsDiff(a, b []float32) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	m := 0.0
	for i := range a {
		d := math.Abs(float64(a[i]) - float64(b[i]))
		if d > m || d != d {
			m = d
		}
	}
	return m
}
