package memory

import (
	"math"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"

	"vitlens/vit"
	"vitlens/vit/checkpoint"
	"vitlens/vit/vittest"
)

func smallModel(t *testing.T) *vit.Model {
	t.Helper()
	c := vit.Config{ImageSize: 8, PatchSize: 4, Channels: 3, Dim: 6, Depth: 2, Heads: 2, MLPDim: 10, Classes: 7,
		QKVBias: true, LNEps: 1e-6, ClassToken: true, Pool: vit.PoolCLS}
	m, err := vit.NewRandom(c, 3)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestProjectionAndAgreementMatchNaive(t *testing.T) {
	m := smallModel(t)
	before := slices.Clone(m.Blocks[1].FC2.Weights())
	headBefore := slices.Clone(m.Head.Weights())
	for _, l := range []Layer{MLP, Attn} {
		w := values(m, 1, l)
		ww, head := w.Weights(), m.Head.Weights()
		c, d, mem := m.Config.Classes, m.Config.Dim, w.In
		p := Projection(m, 1, l)
		cva := ClassValueAgreement(m, 1, l)
		for k := 0; k < c; k++ {
			best := math.Inf(-1)
			for j := 0; j < mem; j++ {
				var dot, en, vn float64
				for i := 0; i < d; i++ {
					e, v := float64(head[k*d+i]), float64(ww[i*mem+j])
					dot += e * v
					en += e * e
					vn += v * v
				}
				if math.Abs(float64(p[k*mem+j])-dot) > 1e-6 {
					t.Fatalf("%s P[%d,%d] = %g, naive %g", l, k, j, p[k*mem+j], dot)
				}
				best = max(best, dot/math.Sqrt(en*vn))
			}
			if math.Abs(cva[k]-best) > 1e-6 {
				t.Fatalf("%s class %d agreement %g, naive %g", l, k, cva[k], best)
			}
		}
	}
	if !slices.Equal(before, m.Blocks[1].FC2.Weights()) || !slices.Equal(headBefore, m.Head.Weights()) {
		t.Fatal("the analysis modified the model's weights")
	}
}

func TestAgreesAndComposes(t *testing.T) {
	b := &Block{ClassTop: [][TopK]int32{{1, 2, 3, 4, 5}, {6, 7, 8, 9, 0}}, MemoryClass: []int32{1, 0, 0, 0, 0, 0, 1, 1, 1, 1}}
	if !b.Agrees([]int32{9, 3, 9, 9, 9}, 0) || b.Agrees([]int32{6, 7, 8, 9, 0}, 0) {
		t.Fatal("Agrees")
	}
	if !b.Composes([]int32{2, 3, 4, 5, 0}, 1) || b.Composes([]int32{2, 3, 4, 5, 1}, 1) {
		t.Fatal("Composes")
	}
}

func TestTokenTopFromTrace(t *testing.T) {
	m := smallModel(t)
	px := vit.NewTensor(3, 8, 8)
	for i := range px.Data {
		px.Data[i] = float32(i%7) - 3
	}
	tr, err := m.Forward(px, vit.Options{Taps: vit.Taps{FC1: true, Heads: true}})
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range []Layer{MLP, Attn} {
		coef, err := Coefficients(tr, 0, l)
		if err != nil {
			t.Fatal(err)
		}
		top := TokenTop(coef)
		mem := coef.Shape[1]
		for tok := 0; tok < coef.Shape[0]; tok++ {
			row := coef.Data[tok*mem : (tok+1)*mem]
			for _, j := range top[tok*TopK : (tok+1)*TopK] {
				larger := 0
				for _, v := range row {
					if v > row[j] {
						larger++
					}
				}
				if larger >= TopK {
					t.Fatalf("%s token %d: memory %d is not in the top %d", l, tok, j, TopK)
				}
			}
		}
	}
	if _, err := Coefficients(&vit.Trace{}, 0, MLP); err == nil {
		t.Fatal("missing taps should be an error")
	}
}

// The interpretable value vectors of the tiny reference model equal numpy's
// top-5 of head.weight @ fc2.weight (attn.proj.weight) per column, computed
// in float64 by tools/reference/make_report_golden.py.
func TestValueClassesMatchNumpy(t *testing.T) {
	var g struct {
		ValueClasses struct {
			Model  string
			Blocks []struct {
				Block   int
				Layer   Layer
				Classes [][]int32
				Logit1  []float64
			}
		} `json:"value_classes"`
	}
	vittest.ReportGolden(t, &g)
	m, _, err := checkpoint.Load(filepath.Join("..", "..", g.ValueClasses.Model), checkpoint.Options{Override: &vit.Config{Heads: 2}}) // heads do not change the weights read here
	if err != nil {
		t.Fatal(err)
	}
	if len(g.ValueClasses.Blocks) != 2*m.Config.Depth {
		t.Fatalf("golden has %d (block, layer) pairs, the model %d blocks", len(g.ValueClasses.Blocks), m.Config.Depth)
	}
	for _, want := range g.ValueClasses.Blocks {
		got := ValueClasses(m, want.Block, want.Layer)
		if len(got) != len(want.Classes) {
			t.Fatalf("block %d %s: %d memories, numpy %d", want.Block, want.Layer, len(got), len(want.Classes))
		}
		for j, v := range got {
			if !slices.Equal(v.Classes[:], want.Classes[j]) {
				t.Errorf("block %d %s memory %d: classes %v, numpy %v", want.Block, want.Layer, j, v.Classes, want.Classes[j])
			}
			// float32 products summed in float32 against float64.
			if d := math.Abs(float64(v.Logits[0]) - want.Logit1[j]); d > 1e-5*math.Max(1, math.Abs(want.Logit1[j])) {
				t.Errorf("block %d %s memory %d: P = %g, numpy %g", want.Block, want.Layer, j, v.Logits[0], want.Logit1[j])
			}
		}
	}
}

// TokenTops in vit.TopRows (the browser's threaded module; skipped
// elsewhere) against TokenTop row by row: widths of whole vectors of four
// and with a tail, one narrower than TopK, rows of ties and rows with a NaN
// or an infinity.
func TestTopRowsKernelMatchesTokenTop(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, width := range []int{3072, 37, 4, 3} {
		coefs := make([]*vit.Tensor, 3)
		for i := range coefs {
			coefs[i] = vit.NewTensor(17+i, width)
			for k := range coefs[i].Data {
				coefs[i].Data[k] = float32(rng.NormFloat64())
			}
			row := func(tok int) []float32 { return coefs[i].Data[tok*width : (tok+1)*width] }
			for k := range row(1) {
				row(1)[k] = float32(k % 3) // ties
			}
			row(2)[width/2] = float32(math.NaN())
			row(3)[0] = float32(math.NaN())
			row(4)[width-1] = float32(math.Inf(1))
			row(5)[width/3] = float32(math.Inf(-1))
		}
		x := make([][]float32, len(coefs))
		got := make([][]int32, len(coefs))
		for i, c := range coefs {
			x[i], got[i] = c.Data, make([]int32, c.Shape[0]*TopK)
		}
		if !vit.TopRows(got, x, width, TopK) {
			t.Skip("no top-rows kernel here (the browser's threaded WebAssembly module)")
		}
		for i, c := range coefs {
			if want := TokenTop(c); !slices.Equal(got[i], want) {
				t.Errorf("width %d, tensor %d: kernel %v, Go %v", width, i, got[i], want)
			}
		}
		if tops := TokenTops(coefs); !slices.Equal(tops[2], TokenTop(coefs[2])) {
			t.Errorf("width %d: TokenTops %v, TokenTop %v", width, tops[2], TokenTop(coefs[2]))
		}
	}
}
