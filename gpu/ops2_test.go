package gpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"vitlens/vit"
	"vitlens/vit/lens"
)

// Fused attention against vit.Attention for every edit, with probabilities,
// on a batch whose images place [CLS] differently: at 0, elsewhere (a
// mean-pooled model may keep it anywhere), or dropped.
func TestKernelAttention(t *testing.T) {
	h := testHarness(t)
	rng := rand.New(rand.NewPCG(4, 4))
	type shape struct{ n, heads, dh int }
	for _, s := range []shape{{1, 1, 1}, {2, 1, 3}, {17, 3, 11}, {50, 4, 24}, {197, 12, 64}, {33, 2, 128}, {65, 2, 80}} {
		for _, edit := range []vit.AttnEdit{vit.EditNone, vit.EditSelfOnly, vit.EditNoCLS} {
			t.Run(fmt.Sprintf("n%d_h%d_dh%d/%s", s.n, s.heads, s.dh, edit), func(t *testing.T) {
				n, H, dh := s.n, s.heads, s.dh
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
					probs, _ := vit.Attention(out, qkv[b*n*3*d:(b+1)*n*3*d], n, H, dh, edit, toks, true, false)
					wantOut = append(wantOut, out...)
					wantProbs = append(wantProbs, probs.Data...)
					cls = append(cls, uint32(int32(slices.Index(toks, 0))))
				}
				p := h.prog(t)
				out := h.out(t, p, "out", B*n*d)
				probs := h.out(t, p, "probs", B*H*n*n)
				if err := p.attention("attention", out, h.in(t, p, "qkv", qkv), h.inWords(t, p, "cls", cls), &probs, B, n, H, dh, edit); err != nil {
					t.Fatal(err)
				}
				res := h.exec(t, p, []view{out, probs}, []int{B * n * d, B * H * n * n})
				nmse, maxAbs := errStats(bytesF32(res[0]), wantOut)
				pn, pmax := errStats(bytesF32(res[1]), wantProbs)
				t.Logf("out: nmse %.2e max-abs %.2e; probs: nmse %.2e max-abs %.2e", nmse, maxAbs, pn, pmax)
				if nmse > 1e-12 || maxAbs > 2e-5 || pn > 1e-12 || pmax > 4e-6 {
					t.Errorf("over bound (out 1e-12/2e-5, probs 1e-12/4e-6)")
				}
			})
		}
	}
}

// Patch extraction, the patch matmul and embed (with [CLS], positions and
// token dropping) against vit.Model.Embed followed by the kept-row gather.
func TestKernelPatchEmbed(t *testing.T) {
	h := testHarness(t)
	base := vit.Config{ImageSize: 15, PatchSize: 5, Channels: 3, Dim: 20, Depth: 1, Heads: 2, MLPDim: 8,
		Classes: 3, LNEps: 1e-6, ClassToken: true, Pool: vit.PoolCLS}
	gap := base
	gap.ClassToken, gap.Pool = false, vit.PoolMean
	for _, c := range []vit.Config{base, gap} {
		m, err := vit.NewRandom(c, 5)
		if err != nil {
			t.Fatal(err)
		}
		T := c.NumTokens()
		keeps := map[string][][]int{"all": {nil, nil}}
		if c.ClassToken {
			keeps["drop"] = [][]int{{0, 5, 2, 7}, {0, 1, 9, 3}}
		} else {
			keeps["drop"] = [][]int{{4, 5, 2, 7}, {0, 1, 8, 3}}
		}
		for name, keep := range keeps {
			t.Run(fmt.Sprintf("cls=%v/%s", c.ClassToken, name), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(6, 6))
				B := len(keep)
				var pixels, want []float32
				var idx []uint32
				for b := 0; b < B; b++ {
					img := vit.NewTensor(c.Channels, c.ImageSize, c.ImageSize)
					copy(img.Data, randn(rng, len(img.Data), 1, 0))
					pixels = append(pixels, img.Data...)
					x := m.Embed(img)
					toks, _ := c.KeptTokens(keep[b])
					for _, tk := range toks {
						want = append(want, x[tk*c.Dim:(tk+1)*c.Dim]...)
						idx = append(idx, uint32(tk))
					}
				}
				n := len(idx) / B
				NP, CPP := c.NumPatches(), c.Channels*c.PatchSize*c.PatchSize
				p := h.prog(t)
				cols := h.out(t, p, "cols", B*NP*CPP)
				patches := h.out(t, p, "patches", B*NP*c.Dim)
				x := h.out(t, p, "x", B*n*c.Dim)
				cls := view{b: h.ks.dummy}
				if c.ClassToken {
					cls = h.in(t, p, "cls", m.ClsToken)
				}
				b := h.in(t, p, "patch.b", m.Patch.B)
				steps := []error{
					p.patchify("patchify", cols, h.in(t, p, "pixels", pixels), B, c),
					p.matmul("matmul", patches, cols, h.in(t, p, "patch.w", m.Patch.W), &b, B*NP, c.Dim, CPP, 0),
					p.embed("embed", x, patches, cls, h.in(t, p, "pos", m.PosEmbed), h.inWords(t, p, "keep", idx), B, n, c),
				}
				for _, err := range steps {
					if err != nil {
						t.Fatal(err)
					}
				}
				got := bytesF32(h.exec(t, p, []view{x}, []int{B * n * c.Dim})[0])
				nmse, maxAbs := errStats(got, want)
				t.Logf("T=%d n=%d: nmse %.2e max-abs %.2e", T, n, nmse, maxAbs)
				if nmse > 1e-12 || maxAbs > 1e-5 {
					t.Errorf("over bound (1e-12, 1e-5)")
				}
			})
		}
	}
}

func TestKernelPoolAndTargets(t *testing.T) {
	h := testHarness(t)
	rng := rand.New(rand.NewPCG(7, 7))
	B, n, d := 3, 13, 37
	x := randn(rng, B*n*d, 1, 0)
	for _, mean := range []bool{false, true} {
		want := make([]float32, B*d)
		for b := 0; b < B; b++ {
			pooled := want[b*d : (b+1)*d]
			if !mean {
				copy(pooled, x[b*n*d:])
				continue
			}
			for tk := 0; tk < n; tk++ { // as vit's classify
				vit.Add(pooled, x[(b*n+tk)*d:(b*n+tk+1)*d])
			}
			for i := range pooled {
				pooled[i] /= float32(n)
			}
		}
		p := h.prog(t)
		out := h.out(t, p, "pooled", B*d)
		if err := p.pool("pool", out, h.in(t, p, "x", x), B, n, d, mean); err != nil {
			t.Fatal(err)
		}
		if _, maxAbs := errStats(bytesF32(h.exec(t, p, []view{out}, []int{B * d})[0]), want); maxAbs != 0 {
			t.Errorf("pool mean=%v: max-abs %.2e, want exact", mean, maxAbs)
		}
	}
	// Targets: negative entries become the first argmax, others stay.
	C := 9
	logits := randn(rng, 4*C, 1, 0)
	logits[1*C+2], logits[1*C+6] = 9, 9 // a tie: the lower class wins
	targets := []int32{-1, -1, 4, -1}
	p := h.prog(t)
	tv := h.inWords(t, p, "targets", []uint32{uint32(targets[0]), uint32(targets[1]), uint32(targets[2]), uint32(targets[3])})
	if err := p.resolveTargets("targets", tv, h.in(t, p, "logits", logits), 4, C); err != nil {
		t.Fatal(err)
	}
	got := bytesU32(h.exec(t, p, []view{tv}, []int{4})[0])
	for b, tg := range targets {
		want := int(tg)
		if tg < 0 {
			want = lens.Argmax(logits[b*C : (b+1)*C])
		}
		if int(int32(got[b])) != want {
			t.Errorf("image %d: target %d, want %d", b, int32(got[b]), want)
		}
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

// The fused lens kernel (LN_final + head + rank + top-k) against
// lens.Projector.Direct, lens.Rank and lens.TopK. Duplicate head rows make
// exact ties, which must break towards the lower class like lens.TopK.
func TestKernelLens(t *testing.T) {
	h := testHarness(t)
	type shape struct{ classes, d, k int }
	for _, s := range []shape{{1, 8, 1}, {3, 24, 5}, {37, 24, 5}, {100, 65, 16}, {1000, 64, 5}, {130, 1, 3}} {
		t.Run(fmt.Sprintf("C%d_D%d_k%d", s.classes, s.d, s.k), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(8, uint64(s.classes)))
			C, D, K := s.classes, s.d, s.k
			m := &vit.Model{Config: vit.Config{Dim: D, Classes: C, LNEps: 1e-6},
				Norm: vit.Norm{W: randn(rng, D, 0.3, 1), B: randn(rng, D, 0.3, 0)},
				Head: vit.Linear{In: D, Out: C, W: randn(rng, C*D, 1, 0), B: randn(rng, C, 0.5, 0)}}
			if C > 10 { // exact ties between classes 3, 7 and 8
				for _, c := range []int{7, 8} {
					copy(m.Head.W[c*D:(c+1)*D], m.Head.W[3*D:4*D])
					m.Head.B[c] = m.Head.B[3]
				}
			}
			S, B, N := 2, 3, 7
			rows := S * B * N
			hidden := randn(rng, rows*D, 2, 0.5)
			targets := []int32{int32(C - 1), 0, int32(min(3, C-1))}
			p := h.prog(t)
			out := h.out(t, p, "out", rows*(K+2))
			w := lensWeights{h.in(t, p, "nw", m.Norm.W), h.in(t, p, "nb", m.Norm.B), h.in(t, p, "hw", m.Head.W), h.in(t, p, "hb", m.Head.B)}
			tv := h.inWords(t, p, "targets", []uint32{uint32(targets[0]), uint32(targets[1]), uint32(targets[2])})
			if err := p.lens("lens", out, h.in(t, p, "h", hidden), tv, w, rows, D, C, K, N, B, 1e-6, 0); err != nil {
				t.Fatal(err)
			}
			got := bytesU32(h.exec(t, p, []view{out}, []int{rows * (K + 2)})[0])
			logits := lens.NewProjector(m).Direct(hidden, rows)
			exact, worstTL := 0, 0.0
			for r := 0; r < rows; r++ {
				row := got[r*(K+2) : (r+1)*(K+2)]
				top := make([]int32, K)
				for j := range top {
					top[j] = int32(row[2+j])
				}
				tg := int(targets[(r/N)%B])
				worstTL = math.Max(worstTL, math.Abs(float64(math.Float32frombits(row[1])-logits[r*C+tg])))
				ok, problem := lensCheck(logits[r*C:(r+1)*C], tg, int(row[0]), math.Float32frombits(row[1]), top, 1e-5)
				if problem != "" {
					t.Errorf("row %d: %s", r, problem)
				}
				if ok {
					exact++
				}
			}
			t.Logf("%d/%d rows identical to the CPU (rank and top-%d); target logit max-abs error %.2e", exact, rows, K, worstTL)
		})
	}
}
