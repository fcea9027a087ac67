package checkpoint

import (
	"testing"

	"github.com/nlpodyssey/safetensors"

	"vitlens/vit"
)

// A head file composes with the model's head: class k's logit of a vector
// is head_k · (P·v + b_P) + b_k, checked against the two maps applied in
// turn; bad files are refused by name.
func TestHeadFile(t *testing.T) {
	m := randomModel(t, tinyConfig()) // its head is the "projection", E = 5
	E, d := m.Config.Classes, m.Config.Dim
	W := []float32{1, 0, 2, 0, -1, 0.5, 0.25, 0, 0, 3}
	ts := tensorSet{}
	ts.put("weight", W, 2, E)
	ts.put("bias", []float32{0.5, -1}, 2)
	file := safetensorsFile(t, ts, map[string]string{"classes": `["yes", "no"]`}, safetensors.F32)
	h, err := ReadHead("h.safetensors", file)
	if err != nil {
		t.Fatal(err)
	}
	v := make([]float32, d)
	for i := range v {
		v[i] = float32(i%3) - 0.7
	}
	emb := make([]float32, E)
	vit.LinearForward(emb, v, 1, m.Head)
	want := make([]float32, 2)
	vit.LinearForward(want, emb, 1, vit.Linear{In: E, Out: 2, W: h.W, B: h.B})
	if err := ApplyHead(m, h); err != nil {
		t.Fatal(err)
	}
	got := make([]float32, 2)
	vit.LinearForward(got, v, 1, m.Head)
	for k := range got {
		if d := got[k] - want[k]; d > 1e-5 || d < -1e-5 {
			t.Errorf("class %d: composed %g, in turn %g", k, got[k], want[k])
		}
	}
	if m.Config.Classes != 2 || len(h.ClassNames) != 2 || h.ClassNames[1] != "no" {
		t.Errorf("classes %d, names %v", m.Config.Classes, h.ClassNames)
	}
	if err := ApplyHead(m, h); err == nil {
		t.Error("a 5-wide head on a 2-class model must be refused")
	} else {
		mustContain(t, err, "h.safetensors: ", "reads 5-wide embeddings, but the model's head gives 2")
	}

	for _, tc := range []struct {
		name string
		meta map[string]string
		want string
	}{
		{"normalize", map[string]string{"normalize": "yes"}, `metadata "normalize" is "yes", want "true" or "false"`},
		{"names", map[string]string{"classes": `["one"]`}, `"classes" has 1 names for 2 classes`},
		{"bad names", map[string]string{"classes": `one, two`}, `not a JSON list of names`},
	} {
		_, err := ReadHead("h.safetensors", safetensorsFile(t, ts, tc.meta, safetensors.F32))
		mustContain(t, err, "h.safetensors: ", tc.want)
	}
	ts.put("extra", []float32{1}, 1)
	_, err = ReadHead("h.safetensors", safetensorsFile(t, ts, nil, safetensors.F32))
	mustContain(t, err, "h.safetensors: ", `unexpected tensor "extra"`)
}
