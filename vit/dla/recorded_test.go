package dla_test

import (
	"math"
	"math/rand/v2"
	"reflect"
	"testing"

	"vitlens/vit"
	"vitlens/vit/dla"
)

// FromActivations on a recorded forward (with the taps the lens asks for)
// against Compute, which runs its own forward with hooks, on pre-norm,
// post-norm, norm_pre, mean-pooled, distilled and register models with
// random biases, parts by source included: within 1e-6, not bit for bit,
// since Compute's forward adds an unhooked attention update to the stream
// inside the GEMM (bias last) where a recording forward adds the finished
// update, and hooking the pattern makes it remake the heads' outputs
// (vit.HeadsFromPattern); both round otherwise. A record of a shortened
// sequence is refused.
func TestFromActivationsIsCompute(t *testing.T) {
	base := vit.Config{ImageSize: 16, PatchSize: 4, Channels: 3, Dim: 24, Depth: 3, Heads: 3, MLPDim: 40, Classes: 7,
		QKVBias: true, LNEps: 1e-6, ClassToken: true, Pool: vit.PoolCLS}
	variants := map[string]func(*vit.Config){
		"pre-norm":  func(*vit.Config) {},
		"post-norm": func(c *vit.Config) { c.PostNorm = true },
		"norm_pre":  func(c *vit.Config) { c.NormPre = true },
		"mean pool": func(c *vit.Config) { c.ClassToken, c.Pool = false, vit.PoolMean },
		"distilled": func(c *vit.Config) { c.DistToken = true },
		"registers": func(c *vit.Config) { c.Registers = 2 },
	}
	for name, change := range variants {
		t.Run(name, func(t *testing.T) {
			c := base
			change(&c)
			m, err := vit.NewRandom(c, 3)
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(5, 6))
			for i := range m.Blocks {
				blk := &m.Blocks[i]
				for _, bias := range [][]float32{blk.QKV.B, blk.Proj.B, blk.FC1.B, blk.FC2.B} {
					for j := range bias {
						bias[j] = float32(rng.NormFloat64() * 0.5)
					}
				}
			}
			x := vit.RandomImages(c, 1, 4)[0]
			var rec vit.Activations
			if _, err := m.Forward(x, vit.Options{Record: &rec, Taps: vit.Taps{AttnProbs: true, FC1: true, Heads: true,
				Embed: true, Sites: [vit.NumSites]bool{true, true, true, true}}}); err != nil {
				t.Fatal(err)
			}
			for _, opt := range []dla.Options{{Target: 0}, {Target: c.Classes - 1, BySource: true}} {
				want, err := dla.Compute(m, x, opt)
				if err != nil {
					t.Fatal(err)
				}
				got, err := dla.FromActivations(m, &rec, opt)
				if err != nil {
					t.Fatal(err)
				}
				near := func(x, y float64) bool { return math.Abs(x-y) <= 1e-6*math.Max(1, math.Abs(y)) }
				if got.Token != want.Token || !near(got.Sigma, want.Sigma) || !reflect.DeepEqual(got.Logits, rec.Logits) {
					t.Fatalf("%+v: token %d, σ %g, logits %v; Compute %d, %g; the record's logits %v", opt, got.Token,
						got.Sigma, got.Logits, want.Token, want.Sigma, rec.Logits)
				}
				if len(got.Parts) != len(want.Parts) || !near(got.Logit, want.Logit) || !near(got.Bias, want.Bias) {
					t.Fatalf("%+v: %d parts, logit %g, bias %g; Compute %d, %g, %g", opt, len(got.Parts), got.Logit,
						got.Bias, len(want.Parts), want.Logit, want.Bias)
				}
				for i, p := range got.Parts {
					w := want.Parts[i]
					if p.Kind != w.Kind || p.Block != w.Block || p.Head != w.Head || p.Source != w.Source ||
						!near(p.Logit, w.Logit) {
						t.Fatalf("%+v: part %+v, Compute's %+v", opt, p, w)
					}
				}
			}
			var short vit.Activations
			if _, err := m.Forward(x, vit.Options{Record: &short, Keep: []int{0, 1, 2, 3, 4}}); err != nil {
				t.Fatal(err)
			}
			for what, r := range map[string]*vit.Activations{"nil": nil, "dropped tokens": &short} {
				if _, err := dla.FromActivations(m, r, dla.Options{}); err == nil {
					t.Errorf("a record with %s was attributed", what)
				}
			}
		})
	}
}
