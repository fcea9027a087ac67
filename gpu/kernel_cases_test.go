package gpu

// One table of kernel cases, as ggml's test-backend-ops: every WGSL kernel on
// odd and even shapes against the pure-Go op it replaces. TestKernels checks
// each case against its bound; BenchmarkKernels replays the same cases for
// per-kernel GFLOP/s from the FLOP counts the program records. A new case is
// one line in kernelCases; each kernel's bound is written once, beside it.

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"vitlens/vit"
	"vitlens/vit/lens"
)

// kernelCase is one run of one or more dispatches and the outputs it checks.
type kernelCase struct {
	name string
	// build records the dispatches on p (inputs uploaded, outputs allocated)
	// and returns the outputs with their pure-Go twins.
	build func(tb testing.TB, h *harness, p *program) []output
	bound map[string]tol // per output name
}

// output is one buffer a case reads back and how it compares with the
// pure-Go result: compare returns the measured error, for the log, and
// whether it is within the bound.
type output struct {
	name    string
	v       view
	words   int
	compare func(raw []byte, b tol) (measured string, ok bool)
}

// tol bounds one output against its pure-Go twin; zero fields ask for
// bitwise equality.
type tol struct {
	nmse, maxAbs float64 // near: Σ(g−w)²/Σw² and max |g−w|
	rel, floor   float64 // relative: max |g−w| / max(|w|, floor)
	logit        float64 // lens readouts: logits within logit·max(1, |logit|)
	stats        float64 // lens readouts: entropy and KL within stats·max(1, |cpu|)
}

// The bounds, one per kernel (the worst measured on lavapipe is logged by
// TestKernels for each case).
var (
	matmulBound    = map[string]tol{"out": {nmse: 1e-11, maxAbs: 1e-4}}
	layerNormBound = map[string]tol{"out": {nmse: 1e-12, maxAbs: 1e-5}}
	exactBound     = map[string]tol{"out": {}}
	attentionBound = map[string]tol{"out": {nmse: 1e-12, maxAbs: 2e-5}, "probs": {nmse: 1e-12, maxAbs: 4e-6}}
	// Over 1,370 keys the outputs are averages of many values, so their
	// norm shrinks while float32 accumulation error does not: both kernels
	// measure nmse 1.6e-12 (out) and 1.1e-12 (probs) there, max-abs within
	// the short sequences' bound.
	attentionLongBound = map[string]tol{"out": {nmse: 4e-12, maxAbs: 2e-5}, "probs": {nmse: 3e-12, maxAbs: 4e-6}}
	patchEmbedBound    = map[string]tol{"out": {nmse: 1e-12, maxAbs: 1e-5}}
	// erf is accurate to about one float32 ulp. erfc's relative error grows
	// in the far tail with WGSL's exp (allowed 3+2|x| ulp): ~7e-6 at
	// erfc(8) = 1e-29, harmless for GELU. GELU is relative above |GELU| =
	// 1e-6; GELUExact rounds to -0 below x≈-5.9.
	erfBound  = map[string]tol{"out": {rel: 4e-7, floor: 1e-30}}
	erfcBound = map[string]tol{"out": {rel: 2e-5, floor: 1e-30}}
	geluBound = map[string]tol{"out": {rel: 5e-6, floor: 1e-6}}
	lensBound = map[string]tol{"out": {logit: 1e-5, stats: 1e-5}}
	unitBound = map[string]tol{"out": {nmse: 1e-12, maxAbs: 1e-5}}
	// pattern_values sums n products in float32 (HeadsFromPattern in float64).
	patternValuesBound = map[string]tol{"out": {nmse: 1e-12, maxAbs: 1e-5}}
)

// attentionBoundFor is the attention bound for a sequence of n tokens.
func attentionBoundFor(n int) map[string]tol {
	if n > 1000 {
		return attentionLongBound
	}
	return attentionBound
}

func kernelCases() []kernelCase {
	var cs []kernelCase
	add := func(name string, b map[string]tol, build func(testing.TB, *harness, *program) []output) {
		cs = append(cs, kernelCase{name: name, build: build, bound: b})
	}
	for _, s := range [][3]int{{1, 1, 1}, {3, 5, 7}, {17, 33, 65}, {50, 96, 128}, {197, 70, 64}, {64, 64, 16}, {130, 200, 48}} {
		for _, mode := range []string{"bias", "nobias", "gelu", "accumulate"} {
			add(fmt.Sprintf("matmul/%dx%dx%d/%s", s[0], s[1], s[2], mode), matmulBound, matmulCase("matmul", s[0], s[1], s[2], mode, 1))
		}
	}
	// The tiled variants (k a multiple of 4): m, n and k off their tiles
	// (k = 36 is 4½ steps of 8, 2¼ of 16), one tile exactly, and more than
	// one tile each way; every epilogue on one odd shape (the epilogue is
	// the simple variant's, matmul_epilogue.wgsl), to bound lavapipe's time.
	for _, v := range tiledMatmuls {
		for _, s := range [][3]int{{1, 1, 4}, {3, 5, 8}, {17, 33, 68}, {64, 64, 16}, {130, 200, 48}, {257, 131, 36}} {
			modes := []string{"bias"}
			if s[0] == 130 {
				modes = []string{"bias", "nobias", "gelu", "accumulate"}
			}
			for _, mode := range modes {
				add(fmt.Sprintf("%s/%dx%dx%d/%s", v.kernel, s[0], s[1], s[2], mode), matmulBound, matmulCase(v.kernel, s[0], s[1], s[2], mode, 1))
			}
		}
	}
	// ViT-B/16's four matmuls for one image (197 tokens), on the simple
	// variant and on the one the backend picks: BenchmarkKernels's figures
	// at real sizes. Weights are scaled like a trained Linear's (1/√k),
	// which keeps float32 sums over k = 3072 within the bound.
	for _, s := range [][3]int{{197, 2304, 768}, {197, 768, 768}, {197, 3072, 768}, {197, 768, 3072}} {
		scale := 1 / math.Sqrt(float64(s[2]))
		add(fmt.Sprintf("matmul/%dx%dx%d/b16", s[0], s[1], s[2]), matmulBound, matmulCase("matmul", s[0], s[1], s[2], "bias", scale))
		add(fmt.Sprintf("matmul_tiled/%dx%dx%d/b16", s[0], s[1], s[2]), matmulBound, matmulCase("", s[0], s[1], s[2], "bias", scale))
	}
	for _, s := range [][2]int{{1, 1}, {1, 7}, {17, 33}, {50, 96}, {197, 64}, {3, 768}} {
		add(fmt.Sprintf("layernorm/%dx%d", s[0], s[1]), layerNormBound, layerNormCase(s[0], s[1]))
	}
	for _, n := range []int{1, 255, 256, 257, 70001} {
		add(fmt.Sprintf("add/%d", n), exactBound, addCase(n))
	}
	add("unary/erf", erfBound, unaryCase(unaryErf, math.Erf))
	add("unary/erfc", erfcBound, unaryCase(unaryErfc, math.Erfc))
	add("unary/gelu", geluBound, unaryCase(unaryGELU, geluExact64))
	add("unary/gelu_tanh", geluBound, unaryCase(unaryGELUTanh, func(v float64) float64 {
		return 0.5 * v * (1 + math.Tanh(0.7978845608028654*(v+0.044715*v*v*v)))
	}))
	add("unary/quick_gelu", geluBound, unaryCase(unaryQuickGELU, func(v float64) float64 { return v / (1 + math.Exp(-1.702*v)) }))
	for _, s := range [][3]int{{1, 1, 1}, {2, 1, 3}, {17, 3, 11}, {50, 4, 24}, {197, 12, 64}, {33, 2, 128}, {65, 2, 80}} {
		for _, edit := range []vit.AttnEdit{vit.EditNone, vit.EditSelfOnly, vit.EditNoCLS} {
			add(fmt.Sprintf("attention/n%d_h%d_dh%d/%s", s[0], s[1], s[2], cmp.Or(string(edit), "none")), attentionBound, attentionCase(s[0], s[1], s[2], edit, true))
		}
	}
	// The fused kernel (no probabilities, dh ≤ 64): odd shapes, key blocks
	// cut short (n = 33, 65 against blocks of 32), and the sequence lengths
	// of 224 px /16, 384 px /16 and DINOv2's 518 px /14 (197, 577, 1,370
	// tokens) at one or two heads, so lavapipe's time stays bounded.
	for _, s := range [][3]int{{1, 1, 1}, {2, 1, 3}, {17, 3, 11}, {33, 2, 64}, {50, 4, 24}, {65, 2, 60}, {197, 2, 64}, {577, 1, 64}, {1370, 1, 64}} {
		edits := []vit.AttnEdit{vit.EditNone, vit.EditSelfOnly, vit.EditNoCLS}
		if s[0] == 1370 {
			edits = edits[:1] // the edits are covered at 577; this case takes lavapipe ~10 s
		}
		for _, edit := range edits {
			add(fmt.Sprintf("flash_attention/n%d_h%d_dh%d/%s", s[0], s[1], s[2], cmp.Or(string(edit), "none")), attentionBoundFor(s[0]), attentionCase(s[0], s[1], s[2], edit, false))
		}
	}
	// The probabilities' kernel at 577 tokens too (at 1,370 lavapipe takes
	// ~30 s; its workgroup memory does not depend on the length either).
	add("attention/n577_h1_dh64/none", attentionBound, attentionCase(577, 1, 64, vit.EditNone, true))
	for _, cls := range []bool{true, false} {
		for _, drop := range []bool{false, true} {
			add(fmt.Sprintf("patch_embed/cls=%v/drop=%v", cls, drop), patchEmbedBound, patchEmbedCase(cls, drop))
		}
	}
	add("pool/cls", exactBound, poolCase(false, 0))
	add("pool/dist", exactBound, poolCase(false, 1))
	add("pool/mean", exactBound, poolCase(true, 0))
	add("targets", exactBound, targetsCase)
	for _, s := range [][3]int{{1, 8, 1}, {3, 24, 5}, {37, 24, 5}, {100, 65, 16}, {1000, 64, 5}, {130, 1, 3}} {
		add(fmt.Sprintf("lens/C%d_D%d_k%d", s[0], s[1], s[2]), lensBound, lensCase(s[0], s[1], s[2], 0))
	}
	// A head file that normalises the embedding (E = 12, 7): the lens with
	// the per-row scales, and the two kernels that make and apply them.
	for _, s := range [][4]int{{5, 16, 5, 12}, {100, 65, 16, 7}} {
		add(fmt.Sprintf("lens/C%d_D%d_k%d/normalize_E%d", s[0], s[1], s[2], s[3]), lensBound, lensCase(s[0], s[1], s[2], s[3]))
	}
	for _, s := range [][2]int{{1, 1}, {300, 12}, {7, 512}} {
		add(fmt.Sprintf("rownorm/%dx%d", s[0], s[1]), unitBound, rowNormCase(s[0], s[1]))
	}
	// Activation patching: one layout per kind of hooked buffer (the stream,
	// q/k/v inside qkv's rows, the heads, the MLP, the head-major pattern).
	for _, pt := range []vit.HookPoint{vit.HookResidPost, vit.HookQ, vit.HookV, vit.HookZ, vit.HookMLPPre, vit.HookPattern} {
		add("patch/"+pt.String(), exactBound, patchCase(cfgOdd, pt))
	}
	add("pattern_values/n17_h3_dh11", patternValuesBound, patternValuesCase(17, 3, 11))
	add("rescale/5x7", unitBound, rescaleCase(5, 7))
	add("rescale/3x1000", unitBound, rescaleCase(3, 1000))
	return cs
}

// TestKernels runs every kernel case against the pure-Go ops.
func TestKernels(t *testing.T) {
	h := testHarness(t)
	for _, kc := range kernelCases() {
		t.Run(kc.name, func(t *testing.T) {
			p := h.prog(t)
			outs := kc.build(t, h, p)
			views, words := make([]view, len(outs)), make([]int, len(outs))
			for i, o := range outs {
				views[i], words[i] = o.v, o.words
			}
			got := h.exec(t, p, views, words)
			for i, o := range outs {
				b, ok := kc.bound[o.name]
				if !ok {
					t.Fatalf("no bound for output %q", o.name)
				}
				measured, within := o.compare(got[i], b)
				t.Logf("%s: %s", o.name, measured)
				if !within {
					t.Errorf("%s: %s, over the bound %+v", o.name, measured, b)
				}
			}
		})
	}
}

// BenchmarkKernels replays the kernel cases and reports GFLOP/s from the
// FLOP counts the dispatches carry. On lavapipe it measures a CPU emulating
// a GPU; only numbers from a real adapter mean anything.
func BenchmarkKernels(bm *testing.B) {
	h := testHarness(bm)
	for _, kc := range kernelCases() {
		bm.Run(kc.name, func(bm *testing.B) {
			p := h.prog(bm)
			kc.build(bm, h, p)
			if err := p.finalize(); err != nil {
				bm.Fatal(err)
			}
			flops := 0.0
			for _, s := range p.steps {
				flops += s.flops
			}
			for bm.Loop() {
				if err := p.submit(nil, nil, nil); err != nil {
					bm.Fatal(err)
				}
				h.d.wait()
			}
			bm.ReportMetric(flops*float64(bm.N)/bm.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}

func randn(rng *rand.Rand, n int, scale, offset float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64()*scale + offset)
	}
	return v
}

// near compares float32 outputs by normalised MSE and max |got−want|.
func near(want []float32) func([]byte, tol) (string, bool) {
	return func(raw []byte, b tol) (string, bool) {
		nmse, maxAbs := errStats(bytesF32(raw), want)
		return fmt.Sprintf("nmse %.2e max-abs %.2e", nmse, maxAbs), nmse <= b.nmse && maxAbs <= b.maxAbs
	}
}

// relative compares f(x) elementwise with a float64 reference, relative to
// |want| with an absolute floor, so values that underflow float32 compare
// absolutely.
func relative(x []float32, ref func(float64) float64) func([]byte, tol) (string, bool) {
	return func(raw []byte, b tol) (string, bool) {
		got := bytesF32(raw)
		worst, at := 0.0, 0
		for i, v := range x {
			want := ref(float64(v))
			if e := math.Abs(float64(got[i])-want) / math.Max(math.Abs(want), b.floor); e > worst || math.IsNaN(e) {
				worst, at = e, i
			}
		}
		return fmt.Sprintf("max relative error %.2e at x=%g (got %g, want %g)", worst, x[at], got[at], ref(float64(x[at]))),
			worst <= b.rel
	}
}

// matmulCase: the matmul variant kernel with an epilogue (mode) against
// vit.LinearForward (+ vit.GELUExact, + vit.Add); weights are N(0, wScale²),
// uploaded in the variant's layout. An empty kernel is the tiled variant the
// backend picks for the shape on this device.
func matmulCase(kernel string, m, n, k int, mode string, wScale float64) func(testing.TB, *harness, *program) []output {
	return func(tb testing.TB, h *harness, p *program) []output {
		rng := rand.New(rand.NewPCG(1, uint64(m*n*k)))
		a, w := randn(rng, m*k, 1, 0), randn(rng, n*k, wScale, 0)
		l := vit.Linear{In: k, Out: n, W: w}
		if mode != "nobias" {
			l.B = randn(rng, n, 1, 0)
		}
		prev := randn(rng, m*n, 1, 0)
		want := make([]float32, m*n)
		vit.LinearForward(want, a, m, l)
		var flags uint32
		switch mode {
		case "gelu":
			vit.GELUExact(want) // vit.GELU is a float32 approximation of it
			flags = matmulGELU
		case "accumulate":
			sum := slices.Clone(prev)
			vit.Add(sum, want)
			want = sum
			flags = matmulAccumulate
		}
		out := h.in(tb, p, "out", prev)
		var bias *view
		if l.B != nil {
			v := h.in(tb, p, "bias", l.B)
			bias = &v
		}
		if kernel == "" {
			v, ok := tiledMatmulFor(m, n, h.d.limits)
			if !ok {
				tb.Fatal("no tiled matmul fits this device")
			}
			kernel = v.kernel
			tb.Logf("variant %s", kernel)
		}
		wv := h.in(tb, p, "w", w)
		if kernel != "matmul" {
			wv = h.in(tb, p, "w (k-major)", kMajor(w, n, k))
			wv.b.kMajor = true
		}
		if err := p.matmulWith("matmul", kernel, out, h.in(tb, p, "a", a), wv, bias, m, n, k, flags); err != nil {
			tb.Fatal(err)
		}
		return []output{{"out", out, m * n, near(want)}}
	}
}

func layerNormCase(rows, d int) func(testing.TB, *harness, *program) []output {
	return func(tb testing.TB, h *harness, p *program) []output {
		rng := rand.New(rand.NewPCG(2, uint64(rows*d)))
		x := randn(rng, rows*d, 2, 3) // an offset mean exercises the two-pass variance
		n := vit.Norm{W: randn(rng, d, 0.3, 1), B: randn(rng, d, 0.3, 0)}
		want := make([]float32, rows*d)
		vit.LayerNorm(want, x, rows, d, n, 1e-6)
		out := h.out(tb, p, "out", rows*d)
		if err := p.layerNorm("ln", out, h.in(tb, p, "x", x), h.in(tb, p, "w", n.W), h.in(tb, p, "b", n.B), rows, d, 1e-6); err != nil {
			tb.Fatal(err)
		}
		return []output{{"out", out, rows * d, near(want)}}
	}
}

func addCase(n int) func(testing.TB, *harness, *program) []output {
	return func(tb testing.TB, h *harness, p *program) []output {
		rng := rand.New(rand.NewPCG(3, uint64(n)))
		dst, src := randn(rng, n, 1, 0), randn(rng, n, 1, 0)
		want := slices.Clone(dst)
		vit.Add(want, src)
		d := h.in(tb, p, "dst", dst)
		if err := p.add("add", d, h.in(tb, p, "src", src), n); err != nil {
			tb.Fatal(err)
		}
		return []output{{"out", d, n, near(want)}}
	}
}

// unaryCase checks a mode of gelu.wgsl (float32 erf, erfc, GELU) against a
// float64 reference on a dense grid plus the tails.
func unaryCase(mode uint32, ref func(float64) float64) func(testing.TB, *harness, *program) []output {
	return func(tb testing.TB, h *harness, p *program) []output {
		var x []float32
		for v := -12.0; v <= 12.0; v += 1.0 / 512 {
			x = append(x, float32(v))
		}
		x = append(x, 0, 1e-30, -1e-30, 1e-8, -1e-8, 3e-5, -3e-5, 0.84375, -0.84375, 1.25, 2.857, 6, 27.9, 40, -40, 100, -100)
		v := h.in(tb, p, "x", x)
		if err := p.unary("unary", v, len(x), mode); err != nil {
			tb.Fatal(err)
		}
		return []output{{"out", v, len(x), relative(x, ref)}}
	}
}

// geluExact64 is vit.GELUExact at one point, as the float64 reference.
func geluExact64(v float64) float64 {
	g := []float32{float32(v)}
	vit.GELUExact(g)
	return float64(g[0])
}

// attentionCase: attention against vit.Attention, on a batch whose images
// place [CLS] differently: at 0, elsewhere (a mean-pooled model may keep it
// anywhere), or dropped; withProbs runs attention.wgsl and checks the
// probabilities too, otherwise flash_attention.wgsl runs.
func attentionCase(n, H, dh int, edit vit.AttnEdit, withProbs bool) func(testing.TB, *harness, *program) []output {
	return func(tb testing.TB, h *harness, p *program) []output {
		rng := rand.New(rand.NewPCG(4, uint64(n*H*dh)))
		d := H * dh
		// Token lists: [CLS] first, [CLS] at position n/2, no [CLS].
		tokLists := [][]int{make([]int, n), make([]int, n), make([]int, n)}
		for i := 0; i < n; i++ {
			tokLists[0][i] = i
			tokLists[1][i] = i + 1
			tokLists[2][i] = i + 1
		}
		tokLists[1][n/2] = 0
		B := len(tokLists)
		qkv := randn(rng, B*n*3*d, 1.5, 0)
		var wantOut, wantProbs []float32
		var cls []uint32
		for b, toks := range tokLists {
			out := make([]float32, n*d)
			probs, _ := vit.Attention(out, qkv[b*n*3*d:(b+1)*n*3*d], n, H, dh, edit, toks, withProbs, false)
			wantOut = append(wantOut, out...)
			if withProbs {
				wantProbs = append(wantProbs, probs.Data...)
			}
			cls = append(cls, uint32(int32(slices.Index(toks, 0))))
		}
		out := h.out(tb, p, "out", B*n*d)
		qv, cv := h.in(tb, p, "qkv", qkv), h.inWords(tb, p, "cls", cls)
		if !withProbs {
			if err := p.flashAttention("attention", out, qv, cv, B, n, H, dh, edit); err != nil {
				tb.Fatal(err)
			}
			return []output{{"out", out, B * n * d, near(wantOut)}}
		}
		probs := h.out(tb, p, "probs", B*H*n*n)
		if err := p.attentionWithProbs("attention", out, qv, cv, &probs, B, n, H, dh, edit); err != nil {
			tb.Fatal(err)
		}
		return []output{{"out", out, B * n * d, near(wantOut)}, {"probs", probs, B * H * n * n, near(wantProbs)}}
	}
}

// patchEmbedCase: patch extraction, the patch matmul and embed (with [CLS],
// positions and token dropping) against vit.Model.Embed followed by the
// kept-row gather.
func patchEmbedCase(classToken, drop bool) func(testing.TB, *harness, *program) []output {
	return func(tb testing.TB, h *harness, p *program) []output {
		c := vit.Config{ImageSize: 15, PatchSize: 5, Channels: 3, Dim: 20, Depth: 1, Heads: 2, MLPDim: 8,
			Classes: 3, LNEps: 1e-6, ClassToken: true, Pool: vit.PoolCLS}
		keep := [][]int{nil, nil}
		if !classToken {
			c.ClassToken, c.Pool = false, vit.PoolMean
			if drop {
				keep = [][]int{{4, 5, 2, 7}, {0, 1, 8, 3}}
			}
		} else if drop {
			keep = [][]int{{0, 5, 2, 7}, {0, 1, 9, 3}}
		}
		m, err := vit.NewRandom(c, 5)
		if err != nil {
			tb.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(6, 6))
		B := len(keep)
		var pixels, want []float32
		var idx []uint32
		for b := 0; b < B; b++ {
			img := vit.NewTensor(c.Channels, c.ImageSize, c.ImageSize)
			copy(img.Data, randn(rng, len(img.Data), 1, 0))
			pixels = append(pixels, img.Data...)
			x := m.Embed(img)
			toks, err := c.KeptTokens(keep[b])
			if err != nil {
				tb.Fatal(err)
			}
			for _, tk := range toks {
				want = append(want, x[tk*c.Dim:(tk+1)*c.Dim]...)
				idx = append(idx, uint32(tk))
			}
		}
		n := len(idx) / B
		NP, CPP := c.NumPatches(), c.Channels*c.PatchSize*c.PatchSize
		cols := h.out(tb, p, "cols", B*NP*CPP)
		patches := h.out(tb, p, "patches", B*NP*c.Dim)
		x := h.out(tb, p, "x", B*n*c.Dim)
		cls := view{b: h.ks.dummy}
		if c.ClassToken {
			cls = h.in(tb, p, "cls", m.ClsToken)
		}
		b := h.in(tb, p, "patch.b", m.Patch.B)
		for _, err := range []error{
			p.patchify("patchify", cols, h.in(tb, p, "pixels", pixels), B, c),
			p.matmul("matmul", patches, cols, h.in(tb, p, "patch.w", m.Patch.Weights()), &b, B*NP, c.Dim, CPP, 0),
			p.embed("embed", x, patches, cls, h.in(tb, p, "pos", m.PosEmbed), h.inWords(tb, p, "keep", idx), B, n, c),
		} {
			if err != nil {
				tb.Fatal(err)
			}
		}
		return []output{{"out", x, B * n * c.Dim, near(want)}}
	}
}

// poolCase: one token's row ([CLS], or distilled DeiT's distillation token)
// or mean pooling against vit's classify, exactly.
func poolCase(mean bool, token int) func(testing.TB, *harness, *program) []output {
	return func(tb testing.TB, h *harness, p *program) []output {
		rng := rand.New(rand.NewPCG(7, 7))
		B, n, d := 3, 13, 37
		x := randn(rng, B*n*d, 1, 0)
		want := make([]float32, B*d)
		for b := 0; b < B; b++ {
			pooled := want[b*d : (b+1)*d]
			if !mean {
				copy(pooled, x[(b*n+token)*d:])
				continue
			}
			for tk := 0; tk < n; tk++ { // as vit's classify
				vit.Add(pooled, x[(b*n+tk)*d:(b*n+tk+1)*d])
			}
			for i := range pooled {
				pooled[i] /= float32(n)
			}
		}
		out := h.out(tb, p, "pooled", B*d)
		if err := p.pool("pool", out, h.in(tb, p, "x", x), B, n, d, mean, token); err != nil {
			tb.Fatal(err)
		}
		return []output{{"out", out, B * d, near(want)}}
	}
}

// targetsCase: negative entries become the first argmax (lens.Argmax), the
// others stay.
func targetsCase(tb testing.TB, h *harness, p *program) []output {
	rng := rand.New(rand.NewPCG(7, 8))
	C := 9
	logits := randn(rng, 4*C, 1, 0)
	logits[1*C+2], logits[1*C+6] = 9, 9 // a tie: the lower class wins
	targets := []int32{-1, -1, 4, -1}
	words := make([]uint32, len(targets))
	want := make([]uint32, len(targets))
	for b, tg := range targets {
		words[b], want[b] = uint32(tg), uint32(tg)
		if tg < 0 {
			want[b] = uint32(lens.Argmax(logits[b*C : (b+1)*C]))
		}
	}
	tv := h.inWords(tb, p, "targets", words)
	if err := p.resolveTargets("targets", tv, h.in(tb, p, "logits", logits), len(targets), C); err != nil {
		tb.Fatal(err)
	}
	return []output{{"out", tv, len(targets), func(raw []byte, _ tol) (string, bool) {
		got := bytesU32(raw)
		return fmt.Sprintf("targets %v, want %v", got, want), slices.Equal(got, want)
	}}}
}

// lensCase: the fused lens kernel (LN_final + head + rank + top-k, entropy
// and KL) against lens.Projector.Direct, lens.Rank, lens.TopK and
// lens.EntropyKL. The reference mode reads the last site slot's rows first,
// so those rows' KL must come out exactly 0. Duplicate head rows make exact
// ties, which must break towards the lower class like lens.TopK.
//
// With unitE > 0 the model normalises a unitE-wide embedding before its head
// (vit.EmbedNorm): the kernel gets the head file's bias and the per-row
// scales, computed here on the CPU, in its shared buffer ahead of the
// reference (the reference pass's rows' scales first, then every row's, as
// the plan refills them), and Direct applies the same rescaling to both
// distributions.
func lensCase(C, D, K, unitE int) func(testing.TB, *harness, *program) []output {
	return func(tb testing.TB, h *harness, p *program) []output {
		rng := rand.New(rand.NewPCG(8, uint64(C)))
		m := &vit.Model{Config: vit.Config{Dim: D, Classes: C, LNEps: 1e-6},
			Norm: vit.Norm{W: randn(rng, D, 0.3, 1), B: randn(rng, D, 0.3, 0)},
			Head: vit.Linear{In: D, Out: C, W: randn(rng, C*D, 1, 0), B: randn(rng, C, 0.5, 0)}}
		if unitE > 0 {
			m.Normalize = &vit.EmbedNorm{Proj: vit.Linear{In: D, Out: unitE, W: randn(rng, unitE*D, 1, 0), B: randn(rng, unitE, 0.3, 0)},
				ClassBias: randn(rng, C, 0.5, 0)}
		}
		if C > 10 { // exact ties between classes 3, 7 and 8
			for _, c := range []int{7, 8} {
				copy(m.Head.W[c*D:(c+1)*D], m.Head.W[3*D:4*D])
				m.Head.B[c] = m.Head.B[3]
			}
		}
		S, B, N := 2, 3, 7
		rows, tokens := S*B*N, B*N
		hidden := randn(rng, rows*D, 2, 0.5)
		last := hidden[(S-1)*tokens*D:]
		targets := []int32{int32(C - 1), 0, int32(min(3, C-1))}
		stride := lensRowWords(K)
		out := h.out(tb, p, "out", rows*stride)
		w := lensWeights{normW: h.in(tb, p, "nw", m.Norm.W), normB: h.in(tb, p, "nb", m.Norm.B), headW: h.in(tb, p, "hw", m.Head.W), headB: h.in(tb, p, "hb", m.Head.B)}
		var unitAll, unitLast []float32 // the unit section for every row, for the reference's
		if en := m.Normalize; en != nil {
			normed := make([]float32, rows*D)
			vit.LayerNorm(normed, hidden, rows, D, m.Norm, m.Config.LNEps)
			e := make([]float32, rows*unitE)
			vit.LinearForward(e, normed, rows, en.Proj)
			unitAll = slices.Clone(en.ClassBias)
			for r := range rows {
				unitAll = append(unitAll, float32(1/vit.EmbedLength(e[r*unitE:(r+1)*unitE])))
			}
			unitLast = slices.Concat(en.ClassBias, unitAll[C+(S-1)*tokens:], make([]float32, (S-1)*tokens))
		}
		aux := lensAux{unit: unitAll != nil, ref: len(unitAll)}
		aux.v = h.in(tb, p, "aux", slices.Concat(unitLast, make([]float32, tokens*C+tokens)))
		tv := h.inWords(tb, p, "targets", []uint32{uint32(targets[0]), uint32(targets[1]), uint32(targets[2])})
		if err := p.lensReference("lens.reference", h.in(tb, p, "h_last", last), tv, aux, w, D, C, K, N, B, 1e-6); err != nil {
			tb.Fatal(err)
		}
		if aux.unit {
			p.copy("unit", h.in(tb, p, "unit_all", unitAll), aux.v, uint64(4*len(unitAll)))
		}
		if err := p.lens("lens", out, h.in(tb, p, "h", hidden), tv, aux, w, rows, D, C, K, N, B, 1e-6, 0); err != nil {
			tb.Fatal(err)
		}
		proj := lens.NewProjector(m)
		logits := proj.Direct(hidden, rows)
		final := lens.LogSoftmaxRows(proj.Direct(last, tokens), C)
		return []output{{"out", out, rows * stride, func(raw []byte, b tol) (string, bool) {
			got := bytesU32(raw)
			exact, worstTL, worstH, worstKL, problems := 0, 0.0, 0.0, 0.0, ""
			logq := make([]float64, C)
			for r := 0; r < rows; r++ {
				row := got[r*stride : (r+1)*stride]
				top := make([]int32, K)
				for j := range top {
					top[j] = int32(row[lensOutHead+j])
				}
				tg := int(targets[(r/N)%B])
				worstTL = math.Max(worstTL, math.Abs(float64(math.Float32frombits(row[1])-logits[r*C+tg])))
				ok, problem := lensCheck(logits[r*C:(r+1)*C], tg, int(row[0]), math.Float32frombits(row[1]), top, b.logit)
				lens.LogSoftmax(logq, logits[r*C:(r+1)*C])
				tok := r % tokens
				hq, kl := lens.EntropyKL(logq, final[tok*C:(tok+1)*C])
				gotH, gotKL := float64(math.Float32frombits(row[2])), float64(math.Float32frombits(row[3]))
				eH, eKL := math.Abs(gotH-hq)/math.Max(1, hq), math.Abs(gotKL-kl)/math.Max(1, kl)
				worstH, worstKL = math.Max(worstH, eH), math.Max(worstKL, eKL)
				switch {
				case !(eH <= b.stats): // NaN fails too
					problem += fmt.Sprintf(" entropy %g, cpu %g", gotH, hq)
				case !(eKL <= b.stats):
					problem += fmt.Sprintf(" KL %g, cpu %g", gotKL, kl)
				case r >= (S-1)*tokens && gotKL != 0:
					problem += fmt.Sprintf(" KL %g of the reference rows themselves, not 0", gotKL)
				}
				if problem != "" {
					problems += fmt.Sprintf("; row %d: %s", r, problem)
				}
				if ok {
					exact++
				}
			}
			return fmt.Sprintf("%d/%d rows identical to the CPU (rank and top-%d); target logit max-abs error %.2e; entropy, KL max error %.2e, %.2e (relative above 1)%s",
				exact, rows, K, worstTL, worstH, worstKL, problems), problems == ""
		}}}
	}
}

// rowNormCase: 1/‖e_r‖ (rownorm.wgsl) against vit.EmbedLength, written
// after an offset as the unit section of the lens's shared buffer holds
// them.
func rowNormCase(rows, e int) func(testing.TB, *harness, *program) []output {
	return func(tb testing.TB, h *harness, p *program) []output {
		rng := rand.New(rand.NewPCG(9, uint64(rows)))
		emb := randn(rng, rows*e, 0.5, 1)
		const off = 3
		want := make([]float32, off+rows)
		for r := range rows {
			want[off+r] = float32(1 / vit.EmbedLength(emb[r*e:(r+1)*e]))
		}
		out := h.out(tb, p, "unit", off+rows)
		if err := p.rowNorm("rownorm", out, h.in(tb, p, "emb", emb), rows, e, off); err != nil {
			tb.Fatal(err)
		}
		return []output{{"out", out, off + rows, near(want)}}
	}
}

// rescaleCase: logits (v − b)·s_r + b (rescale.wgsl) against
// vit.Model.NormalizeLogits's formula.
func rescaleCase(rows, C int) func(testing.TB, *harness, *program) []output {
	return func(tb testing.TB, h *harness, p *program) []output {
		rng := rand.New(rand.NewPCG(10, uint64(C)))
		logits := randn(rng, rows*C, 3, 0)
		unit := append(randn(rng, C, 0.5, 0), randn(rng, rows, 0.1, 0.3)...)
		want := make([]float32, rows*C)
		for r := range rows {
			for k := range C {
				want[r*C+k] = float32(float64(logits[r*C+k]-unit[k])*float64(unit[C+r])) + unit[k]
			}
		}
		lv := h.in(tb, p, "logits", logits)
		if err := p.rescale("rescale", lv, h.in(tb, p, "unit", unit), rows, C); err != nil {
			tb.Fatal(err)
		}
		return []output{{"out", lv, rows * C, near(want)}}
	}
}

// lensCheck compares one GPU readout row with logits computed on the CPU:
// target logit within tol, rank within the range that ties (|Δ| ≤ tol)
// allow, and each top-k entry's logit within tol of the CPU's at that
// position. It returns whether indices matched exactly, and an error text.
func lensCheck(logits []float32, target, rank int, tl float32, top []int32, tol float64) (exact bool, problem string) {
	scale := math.Max(1, math.Abs(float64(logits[target])))
	if d := math.Abs(float64(tl - logits[target])); d > tol*scale {
		return false, fmt.Sprintf("target logit %g, cpu %g", tl, logits[target])
	}
	lo, hi := 0, 0
	for c, v := range logits {
		if c == target {
			continue
		}
		if float64(v) > float64(logits[target])+tol*scale {
			lo++
		}
		if float64(v) > float64(logits[target])-tol*scale {
			hi++
		}
	}
	if rank < lo || rank > hi {
		return false, fmt.Sprintf("rank %d, cpu %d (ties allow %d..%d)", rank, lens.Rank(logits, target), lo, hi)
	}
	want := make([]int32, len(top))
	lens.TopK(want, logits)
	exact = rank == lens.Rank(logits, target)
	for j := range top {
		if top[j] == want[j] {
			continue
		}
		exact = false
		if top[j] < 0 || want[j] < 0 || math.Abs(float64(logits[top[j]]-logits[want[j]])) > tol*scale {
			return false, fmt.Sprintf("top-%d %v, cpu %v", len(top), top, want)
		}
	}
	return exact, ""
}
