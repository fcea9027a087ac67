package lens

import (
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"sort"
	"sync/atomic"
	"testing"

	"vitlens/vit"
)

func testModel(t *testing.T, c vit.Config) *vit.Model {
	t.Helper()
	m, err := vit.NewRandom(c, 11)
	if err != nil {
		t.Fatal(err)
	}
	// Non-trivial final norm and head bias, so folding mistakes show.
	rng := rand.New(rand.NewPCG(5, 6))
	for i := range m.Norm.W {
		m.Norm.W[i] = 1 + 0.3*float32(rng.NormFloat64())
		m.Norm.B[i] = 0.3 * float32(rng.NormFloat64())
	}
	for i := range m.Head.B {
		m.Head.B[i] = 0.5 * float32(rng.NormFloat64())
	}
	m.Head = m.Head.Unpacked()
	for i := range m.Head.W {
		m.Head.W[i] *= 20
	}
	return m
}

var tinyCLS = vit.Config{ImageSize: 16, PatchSize: 4, Channels: 3, Dim: 24, Depth: 3, Heads: 3, MLPDim: 40,
	Classes: 37, QKVBias: true, LNEps: 1e-6, ClassToken: true, Pool: vit.PoolCLS}

func TestFoldedProjectionMatchesDirect(t *testing.T) {
	m := testModel(t, tinyCLS)
	p := NewProjector(m)
	rng := rand.New(rand.NewPCG(9, 9))
	n := 5
	h := make([]float32, n*m.Config.Dim)
	for i := range h {
		h[i] = float32(rng.NormFloat64() * 3)
	}
	want := p.Direct(h, n)
	got := p.Raw(nil, h, n)
	for t := 0; t < n; t++ {
		row := got[t*p.Classes : (t+1)*p.Classes]
		p.FinishRow(row, row, h[t*p.Dim:(t+1)*p.Dim])
	}
	for i := range got {
		if math.Abs(float64(got[i]-want[i])) > 1e-4*(1+math.Abs(float64(want[i]))) {
			t.Fatalf("logit %d: folded %g, direct %g", i, got[i], want[i])
		}
	}
}

// The residual-accumulation fast path gives the same readouts as projecting
// every tapped vector directly, for pre-norm and post-norm models.
func TestFoldedBackendMatchesDirect(t *testing.T) {
	gap := tinyCLS
	gap.ClassToken, gap.Pool, gap.PostNorm, gap.QKVBias = false, vit.PoolMean, true, false
	wide := tinyCLS // enough logits that the readout runs in several token chunks
	wide.Classes = 5000
	for _, c := range []vit.Config{tinyCLS, gap, wide} {
		m := testModel(t, c)
		if c.PostNorm {
			for i := range m.Blocks { // 1e-5 init would make every update vanish
				for j := range m.Blocks[i].Norm1.W {
					m.Blocks[i].Norm1.W[j], m.Blocks[i].Norm2.W[j] = 1, 0.7
				}
			}
		}
		yes, no := true, false
		fast, slow := NewCPU(m), NewCPU(m)
		fast.Folded, slow.Folded = &yes, &no
		imgs := []*vit.Tensor{vit.RandomImages(c, 1, 1)[0], vit.RandomImages(c, 1, 2)[0]}
		req := Request{Sites: vit.AllSites(), TopK: 5, Targets: []int{3, -1}}
		a, err := fast.Analyze(imgs, req)
		if err != nil {
			t.Fatal(err)
		}
		b, err := slow.Analyze(imgs, req)
		if err != nil {
			t.Fatal(err)
		}
		for i := range a {
			if a[i].Target != b[i].Target {
				t.Fatalf("target %d vs %d", a[i].Target, b[i].Target)
			}
			for j, ra := range a[i].Readouts {
				rb := b[i].Readouts[j]
				for tok := range ra.Rank {
					if d := math.Abs(float64(ra.TargetLogit[tok] - rb.TargetLogit[tok])); d > 1e-4*(1+math.Abs(float64(rb.TargetLogit[tok]))) {
						t.Fatalf("%v block %d token %d: target logit %g vs %g", ra.Site, ra.Block, tok, ra.TargetLogit[tok], rb.TargetLogit[tok])
					}
					if ra.Rank[tok] != rb.Rank[tok] {
						t.Fatalf("%v block %d token %d: rank %d vs %d", ra.Site, ra.Block, tok, ra.Rank[tok], rb.Rank[tok])
					}
				}
			}
		}
	}
}

// The row readers agree exactly: the token pass, kernelReadouts with its Go
// twin, and the default, which in the browser's threaded build is
// kernelReadouts with the WebAssembly module's class-row kernel (run it
// under Node with helper threads to test that one). The two models' logits
// spread beyond 87 nats on some rows (which the kernel leaves to Go) and
// within it on most (B/16-like, 1000 classes, none a multiple of 4 short).
func TestRowReadersAgree(t *testing.T) {
	wide := tinyCLS
	wide.Classes = 1001
	for _, c := range []vit.Config{tinyCLS, wide} {
		for _, m := range []*vit.Model{testModel(t, c), randomModel(t, c)} {
			imgs := []*vit.Tensor{vit.RandomImages(c, 1, 1)[0], vit.RandomImages(c, 1, 2)[0]}
			req := Request{Sites: vit.AllSites(), TopK: 5, Targets: []int{3, -1}}
			var results [][]*Result
			for _, rows := range []rowReader{rowsTokens, rowsKernelTwin, rowsAuto} {
				cpu := NewCPU(m)
				cpu.rows = rows
				res, err := cpu.Analyze(imgs, req)
				if err != nil {
					t.Fatal(err)
				}
				results = append(results, res)
			}
			for i, res := range results[1:] {
				for j := range res {
					if !reflect.DeepEqual(res[j].Readouts, results[0][j].Readouts) {
						t.Errorf("%d classes, image %d: the readouts of row reader %d differ from the token pass's", c.Classes, j, i+1)
					}
				}
			}
		}
	}
}

// vit.ReadClassRows (the browser's threaded module; skipped elsewhere)
// against FinishRow and readRow row by row, bit for bit, on rows it reads
// and on one it must leave to Go (a logit 1000 above the rest); its
// LayerNorm statistics on a width of whole vectors of four and on one with
// a tail.
func TestClassRowKernelMatchesGo(t *testing.T) {
	if !vit.ClassRowsKernel() {
		t.Skip("no class-row kernel here (the browser's threaded WebAssembly module)")
	}
	for _, dim := range []int{24, 27} {
		t.Run(fmt.Sprint("dim", dim), func(t *testing.T) { testClassRowKernel(t, dim) })
	}
}

func testClassRowKernel(t *testing.T, dim int) {
	c := tinyCLS
	c.Classes, c.Dim = 1001, dim
	m := randomModel(t, c)
	p := NewProjector(m)
	rng := rand.New(rand.NewPCG(3, 4))
	const n, sites = 7, 3
	h := make([][]float32, sites)
	job := vit.ClassRows{Dim: p.Dim, Eps: c.LNEps, S: p.S, Bias: p.Bias,
		Ref: make([]float32, n*p.Classes), Tokens: n, Classes: p.Classes, Target: 5, K: 5}
	refs := make([]klReference, n)
	refLogits := p.Direct(randRows(rng, n*p.Dim), n)
	for tok := range refs {
		refs[tok] = newKLReference(job.Ref[tok*p.Classes:(tok+1)*p.Classes], refLogits[tok*p.Classes:(tok+1)*p.Classes])
	}
	for si := range h {
		h[si] = randRows(rng, n*p.Dim)
		job.Z, job.H = append(job.Z, p.Raw(nil, h[si], n)), append(job.H, h[si])
	}
	job.Z[1][2*p.Classes+9] += 1000 // row n+2: past Exp32's range
	if !vit.ReadClassRows(&job) {
		t.Fatal("ClassRowsKernel, yet ReadClassRows did not run")
	}
	logits, exps, top := make([]float32, p.Classes), make([]float32, p.Classes), make([]int32, job.K)
	for r := range job.Rows() {
		si, tok := r/n, r%n
		o := job.Out[5*r : 5*r+5]
		if r == n+2 {
			if o[0] != -1 {
				t.Errorf("row %d, a logit 1000 above the rest: rank %g, want -1 (left to Go)", r, o[0])
			}
			continue
		}
		p.FinishRow(logits, job.Z[si][tok*p.Classes:(tok+1)*p.Classes], h[si][tok*p.Dim:(tok+1)*p.Dim])
		lt := logits[job.Target]
		rank, entropy, kl := readRow(top, logits, exps, lt, refs[tok])
		gotH, gotKL := entropyKL(o[2], o[3], o[4], refs[tok])
		if o[0] != float64(rank) || float32(o[1]) != lt || gotH != entropy || gotKL != kl ||
			!slices.Equal(job.Top[r*job.K:(r+1)*job.K], top) {
			t.Errorf("row %d: kernel rank %g logit %g top %v entropy %g KL %g; Go %d %g %v %g %g", r, o[0], o[1],
				job.Top[r*job.K:(r+1)*job.K], gotH, gotKL, rank, lt, top, entropy, kl)
		}
	}
}

func randRows(rng *rand.Rand, size int) []float32 {
	x := make([]float32, size)
	for i := range x {
		x[i] = float32(rng.NormFloat64() * 3)
	}
	return x
}

func randomModel(t *testing.T, c vit.Config) *vit.Model {
	m, err := vit.NewRandom(c, 12)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// forTokens hands every token to exactly one chunk, whatever the sizes.
func TestForTokensCoversEachTokenOnce(t *testing.T) {
	for _, n := range []int{0, 1, 7, 197, 1000} {
		for _, classes := range []int{1, 10, 1000, 100000} {
			seen := make([]int32, n)
			forTokens(n, classes, func(t0, t1 int, scratch *tokenScratch) {
				if len(scratch.logits) != classes {
					t.Errorf("scratch of %d, want %d", len(scratch.logits), classes)
				}
				for i := t0; i < t1; i++ {
					atomic.AddInt32(&seen[i], 1)
				}
			})
			for i, v := range seen {
				if v != 1 {
					t.Fatalf("n=%d classes=%d: token %d seen %d times", n, classes, i, v)
				}
			}
		}
	}
}

func TestRankAndTopK(t *testing.T) {
	for _, vector := range []bool{true, false} {
		saved := vectorRows
		vectorRows = vectorRows && vector
		testRankAndTopK(t)
		vectorRows = saved
	}
}

func testRankAndTopK(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	for trial := 0; trial < 200; trial++ {
		n := 1 + rng.IntN(30)
		if trial%2 == 1 { // long enough for firstAbove's vector body
			n = 1 + rng.IntN(300)
		}
		logits := make([]float32, n)
		for i := range logits {
			logits[i] = float32(rng.IntN(8)) // many ties on purpose
		}
		idx := make([]int, n)
		for i := range idx {
			idx[i] = i
		}
		sort.SliceStable(idx, func(a, b int) bool { return logits[idx[a]] > logits[idx[b]] })
		k := 1 + rng.IntN(6)
		top := make([]int32, k)
		TopK(top, logits)
		for i := 0; i < k; i++ {
			want := int32(-1)
			if i < n {
				want = int32(idx[i])
			}
			if top[i] != want {
				t.Fatalf("logits %v: top%d = %v, want prefix of %v", logits, k, top, idx)
			}
		}
		target := rng.IntN(n)
		r := Rank(logits, target)
		for pos, c := range idx { // first position holding target's value
			if logits[c] == logits[target] {
				if r != pos {
					t.Fatalf("rank of %d in %v = %d, want %d", target, logits, r, pos)
				}
				break
			}
		}
	}
}

// The AVX2 row passes against their Go loops, on rows of odd lengths: the
// finished logits within float32 rounding of the float64 loop, the max,
// the copy, the rank count and firstAbove exact, the lane sums within
// float32 rounding (1e-6 of the sum of the terms' magnitudes) of float64
// sums.
func TestRowKernelsMatchGo(t *testing.T) {
	if !vectorRows {
		t.Skip("no vector row kernels on this CPU or build")
	}
	rng := rand.New(rand.NewPCG(8, 8))
	for trial := 0; trial < 100; trial++ {
		n := 1 + rng.IntN(1100)
		row := func(scale float64) []float32 {
			v := make([]float32, n)
			for i := range v {
				v[i] = float32(rng.NormFloat64() * scale)
			}
			return v
		}
		z, s, b, e, p := row(30), row(2), row(1), row(1), row(1)
		for i := range e {
			e[i], p[i] = float32(math.Abs(float64(e[i]))), float32(math.Abs(float64(p[i])))
		}
		mean, inv := rng.NormFloat64()*2, 0.1+rng.Float64()
		got := make([]float32, n)
		done := finishVector(got, z, s, b, float32(inv), float32(-mean*inv))
		for k := 0; k < done; k++ {
			want := (float64(z[k])-mean*float64(s[k]))*inv + float64(b[k])
			if d := math.Abs(float64(got[k]) - want); d > 3e-7*(math.Abs(float64(z[k])*inv)+math.Abs(mean*float64(s[k])*inv)+math.Abs(float64(b[k]))) {
				t.Fatalf("n %d: finished logit %d: %g, float64 %g", n, k, got[k], want)
			}
		}
		v := z
		cp := make([]float32, n)
		var laneMax [8]float32
		if done := copyMaxVector(cp, v, &laneMax); done > 0 {
			for l := range laneMax {
				want := v[l]
				for i := l; i < done; i += 8 {
					want = max(want, v[i])
				}
				if laneMax[l] != want {
					t.Fatalf("n %d: lane %d max %g, want %g", n, l, laneMax[l], want)
				}
			}
			if !slices.Equal(cp[:done], v[:done]) {
				t.Fatalf("n %d: the copy differs", n)
			}
		}
		lt, shift := v[rng.IntN(n)], float32(rng.NormFloat64())
		var lanes [3][8]float32
		done, count := rowSumsVector(v, e, p, lt, shift, &lanes)
		var wantCount int
		var want, size, sum [3]float64 // size: Σ|term|, what float32 rounding scales with
		for k := 0; k < done; k++ {
			if v[k] > lt {
				wantCount++
			}
			d := float64(v[k] - shift)
			for i, term := range [3]float64{float64(e[k]), float64(e[k]) * d, float64(p[k]) * d} {
				want[i] += term
				size[i] += math.Abs(term)
			}
		}
		for i := range sum {
			for _, l := range lanes[i] {
				sum[i] += float64(l)
			}
			if math.Abs(sum[i]-want[i]) > 1e-6*size[i] {
				t.Fatalf("n %d: lane sum %d: %g, float64 %g", n, i, sum[i], want[i])
			}
		}
		if count != wantCount {
			t.Fatalf("n %d: count above %g: %d, want %d", n, lt, count, wantCount)
		}
		above := lt + float32(rng.Float64()*40)
		wantAt := slices.IndexFunc(v, func(x float32) bool { return x > above })
		if wantAt < 0 {
			wantAt = n
		}
		if at := firstAbove(v, above); at != wantAt {
			t.Fatalf("n %d: first above %g at %d, want %d", n, above, at, wantAt)
		}
	}
}

// copyMax's Go loop (the browser build's whole path) keeps the max
// builtin's answer, NaN included, with comparisons instead of its call:
// rows shorter than a vector pass, so only the loop runs.
func TestCopyMaxIsMax(t *testing.T) {
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	for _, row := range [][]float32{{1, -2, 3}, {-inf, -inf}, {2, nan, 5, -1}, {nan, 1}, {inf, -inf, 0, 7, -3, 2, 1}} {
		dst := make([]float32, len(row))
		m, lanes := copyMax(dst, row)
		want := float32(math.Inf(-1))
		for l := range lanes {
			wantLane := float32(math.Inf(-1))
			for i := l; i < len(row); i += 8 {
				wantLane = max(wantLane, row[i])
			}
			want = max(want, wantLane)
			if !(lanes[l] == wantLane || lanes[l] != lanes[l] && wantLane != wantLane) {
				t.Fatalf("%v: lane %d max %g, want %g", row, l, lanes[l], wantLane)
			}
		}
		if !(m == want || m != m && want != want) {
			t.Fatalf("%v: max %g, want %g", row, m, want)
		}
		for i := range row {
			if math.Float32bits(dst[i]) != math.Float32bits(row[i]) {
				t.Fatalf("%v: copied %v", row, dst)
			}
		}
	}
}

// A CPU backend that reuses the taps of its earlier forwards (the spare
// traces) reads out every image exactly as a fresh one does, whatever ran
// before: another image, a shorter sequence (Keep), or a caller who keeps
// some taps.
func TestReusedTapsReadOutAsFresh(t *testing.T) {
	m := testModel(t, tinyCLS)
	imgs := vit.RandomImages(tinyCLS, 3, 4)
	full := Request{Sites: vit.AllSites(), TopK: 5, Targets: []int{3}}
	short := full
	short.Keep = [][]int{{0, 2, 5, 7}}
	kept := full
	kept.Taps.Sites[vit.SiteHS] = true
	fresh := func(img *vit.Tensor, req Request) *Result {
		res, err := NewCPU(m).Analyze([]*vit.Tensor{img}, req)
		if err != nil {
			t.Fatal(err)
		}
		return res[0]
	}
	reused := NewCPU(m)
	var keptEarlier, keptWant *vit.Tensor // a tap returned to the caller stays theirs
	for i, step := range []struct {
		img int
		req Request
	}{{0, full}, {1, short}, {2, full}, {0, kept}, {1, full}, {2, kept}} {
		got, err := reused.Analyze([]*vit.Tensor{imgs[step.img]}, step.req)
		if err != nil {
			t.Fatal(err)
		}
		want := fresh(imgs[step.img], step.req)
		for j, r := range got[0].Readouts {
			w := want.Readouts[j]
			if !slices.Equal(r.Rank, w.Rank) || !slices.Equal(r.Top, w.Top) || !slices.Equal(r.TargetLogit, w.TargetLogit) ||
				!slices.Equal(r.Entropy, w.Entropy) || !slices.Equal(r.KL, w.KL) {
				t.Fatalf("step %d: %v block %d differs from a fresh backend's", i, r.Site, r.Block)
			}
		}
		if hs := got[0].Trace.Site(vit.SiteHS, 1); (hs != nil) != step.req.Taps.Sites[vit.SiteHS] ||
			hs != nil && !slices.Equal(hs.Data, want.Trace.Site(vit.SiteHS, 1).Data) {
			t.Fatalf("step %d: the kept hs tap is wrong", i)
		}
		if hs := got[0].Trace.Site(vit.SiteHS, 1); hs != nil && keptEarlier == nil {
			keptEarlier, keptWant = hs, want.Trace.Site(vit.SiteHS, 1)
		}
	}
	if !slices.Equal(keptEarlier.Data, keptWant.Data) {
		t.Fatal("a later forward overwrote a tap the caller kept")
	}
}
