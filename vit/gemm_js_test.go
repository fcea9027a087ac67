//go:build js && !purego

package vit

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strconv"
	"syscall/js"
	"testing"
	"time"
	"weak"
)

// Under Node (GOOS=js GOARCH=wasm go test -exec go_js_wasm_exec) the SIMD
// module must load: a test run that silently fell back to the scalar loop
// would test nothing new.
func TestSIMDKernelLoads(t *testing.T) {
	if simd == nil {
		t.Fatalf("no SIMD kernel: %v", simdErr)
	}
}

// newThreadedOrSingle's choice: the threaded build wherever shared memory
// is allowed off the main thread (node_threads_exec's Node, the engine's
// worker), at 1 thread too, where no helper starts and the caller runs
// every chunk of the lens's rows and attention's heads; else the single
// one; of either, the relaxed-SIMD one where the engine takes it (off the
// page's main thread, for the single one) and it is not turned off. make
// wasm-check runs this under plain Node (no relaxed SIMD in Node 20), under
// node_threads_exec (relaxed SIMD turned on), under it with
// VITLENS_THREADS=1, with VITLENS_RELAXED_SIMD=off and without its threads
// (VITLENS_NODE_THREADS=off).
func TestSIMDKernelChoice(t *testing.T) {
	if simd == nil {
		t.Skip(simdErr)
	}
	if GEMMKernel() != "simd" {
		t.Skip("VITLENS_GEMM chose another kernel")
	}
	g := js.Global()
	page := g.Get("document").Truthy()
	isolated := g.Get("crossOriginIsolated").Truthy() && !page
	if simd.threaded != isolated {
		t.Fatalf("threaded build %v, want %v (crossOriginIsolated without a document)", simd.threaded, isolated)
	}
	relaxed := simdFMAWasm
	if isolated {
		relaxed = simdThreadsFMAWasm
	}
	code := g.Get("Uint8Array").New(len(relaxed))
	js.CopyBytesToJS(code, relaxed)
	valid := g.Get("WebAssembly").Call("validate", code).Bool()
	off := os.Getenv("VITLENS_RELAXED_SIMD") == "off"
	if RelaxedSIMD() != (valid && !off && !page) {
		t.Errorf("RelaxedSIMD() = %v; the engine validates the relaxed-SIMD build: %v, VITLENS_RELAXED_SIMD=off: %v, a page: %v",
			RelaxedSIMD(), valid, off, page)
	}
	t.Logf("threaded build %v, %d threads, relaxed SIMD %v", simd.threaded, simd.threads, RelaxedSIMD())
	if !isolated {
		if simd.threads != 1 || threadedModule() || ClassRowsKernel() {
			t.Errorf("single-threaded build: %d threads, threadedModule %v, ClassRowsKernel %v; want 1, false, false",
				simd.threads, threadedModule(), ClassRowsKernel())
		}
		return
	}
	want := g.Get("navigator").Get("hardwareConcurrency").Int()
	if n, err := strconv.Atoi(os.Getenv("VITLENS_THREADS")); err == nil && n >= 1 {
		want = min(want, n)
	}
	if simd.threads != want || !threadedModule() || !ClassRowsKernel() {
		t.Errorf("threaded build: %d threads, threadedModule %v, ClassRowsKernel %v; want %d, true, true",
			simd.threads, threadedModule(), ClassRowsKernel(), want)
	}
	if got := simdThreads(); got > want || want == 1 && got != 1 {
		t.Errorf("simdThreads() = %d with %d threads", got, want)
	}
}

// The module against the scalar twin (matMulTScalar, the path of builds
// without it) on random shapes that are mostly not multiples of its 4×8
// tile, 16-column panels or 256-long k-slices, through PackedT (kept
// weights, copied once) with every epilogue, and through attention's
// transient operands (B copied per call, strided A and C).
func TestSIMDGEMMMatchesScalar(t *testing.T) {
	if simd == nil {
		t.Skip(simdErr)
	}
	checkKernelMatchesScalar(t, simd)
}

// The threads' chunked split, on one thread (Node has no Worker): the
// single-threaded module cut into 5 chunks a thread, and the threaded
// module (on a shared memory) driven through gemmParallel as a caller
// whose 2 helpers never came, so that it packs all of A (packShared) and
// takes all 12 chunks itself; the single-threaded build packs A in each
// chunk. Each chunk applies the bias and GELU to its own columns. Every product is
// chunked, however small (minChunk 1).
func TestSIMDChunkedMatchesScalar(t *testing.T) {
	if simd == nil {
		t.Skip(simdErr)
	}
	k, err := newSIMDKernel()
	if err != nil {
		t.Fatal(err)
	}
	k.split, k.minChunk = 5, 1 // every product chunked, however small
	t.Run("single", func(t *testing.T) { checkKernelMatchesScalar(t, k) })
	kt, err := newThreadedKernel(1) // no helper started
	if err != nil {
		t.Fatalf("threaded kernel: %v", err)
	}
	kt.threads, kt.split, kt.minChunk = 3, 4, 1
	t.Run("threaded", func(t *testing.T) { checkKernelMatchesScalar(t, kt) })
}

func TestSplitPanels(t *testing.T) {
	for _, c := range []struct{ panels, want, chunks, per int }{
		{0, 4, 0, 1}, {1, 8, 1, 1}, {4, 8, 4, 1}, {13, 8, 7, 2}, {48, 8, 8, 6}, {48, 1, 1, 48}, {5, 0, 1, 5},
	} {
		chunks, per := splitPanels(c.panels, c.want)
		if chunks != c.chunks || per != c.per {
			t.Errorf("splitPanels(%d, %d) = %d, %d; want %d, %d", c.panels, c.want, chunks, per, c.chunks, c.per)
		}
		if c.panels > 0 && ((chunks-1)*per >= c.panels || chunks*per < c.panels) {
			t.Errorf("splitPanels(%d, %d): %d chunks of %d do not cover the panels exactly once", c.panels, c.want, chunks, per)
		}
	}
}

func checkKernelMatchesScalar(t *testing.T, sk *simdKernel) {
	rng := rand.New(rand.NewPCG(13, 14))
	shapes := [][3]int{{1, 1, 1}, {1, 300, 300}, {300, 1, 7}, {4, 16, 256}, {5, 17, 257}, {197, 64, 197}}
	for range 30 {
		shapes = append(shapes, [3]int{1 + rng.IntN(300), 1 + rng.IntN(300), 1 + rng.IntN(300)})
	}
	kern := &gemmKernel{name: "simd", run: sk.microKernel, whole: sk.gemm}
	for _, s := range shapes {
		m, n, k := s[0], s[1], s[2]
		name := fmt.Sprintf("m=%d n=%d k=%d", m, n, k)
		a, w, bias, x := randSlice(rng, m*k), randSlice(rng, n*k), randSlice(rng, n), randSlice(rng, m*n)
		want := make([]float32, m*n)
		matMulTScalar(want, a, w, m, n, k)
		tol := 1e-5 * math.Sqrt(float64(k))

		kept := &packedB{kept: true} // as PackT packs weights
		kept.packBT(w, k, n, k)
		got := make([]float32, m*n)
		gemm(kern, got, n, a, k, m, kept, epilogue{}, 1)
		expectNear(t, name+" plain", got, want, tol)
		if len(kept.data) != kept.panels()*k*gemmNR {
			t.Fatalf("%s: Go's packed copy of kept weights, which Linear's readers unpack, was dropped", name)
		}
		top := sk.top
		gemm(kern, got, n, a, k, m, kept, epilogue{bias: bias, gelu: true}, 1)
		withBias := append([]float32(nil), want...)
		epilogue{bias: bias, gelu: true}.apply(withBias, n, 0, m, 0, n)
		expectNear(t, name+" bias+GELU", got, withBias, tol)
		if sk.top != top {
			t.Fatalf("%s: the second product with the same weights grew the module's memory use", name)
		}
		got = append(got[:0], x...)
		gemm(kern, got, n, a, k, m, kept, epilogue{accumulate: true, bias: bias}, 1)
		added := append([]float32(nil), want...)
		Add(added, x)
		Add(added, tiledBias(bias, m))
		expectNear(t, name+" residual+bias", got, added, tol)

		// Single products from an unpacked B (gemm.c's packB, each layout's
		// strides): bit for bit the product on B packed by Go, which the
		// module runs as it runs every packed one.
		wT := make([]float32, k*n) // w's transpose: B row-major
		for j := range n {
			for p := range k {
				wT[p*n+j] = w[j*k+p]
			}
		}
		a2 := randSlice(rng, m*n) // x·W's left operand: m×Out
		// The same in rows of a longer stride (attention's keys and
		// values in qkv), which the module gathers first.
		wS, wTS := make([]float32, n*(k+5)), make([]float32, k*(n+3))
		for j := range n {
			copy(wS[j*(k+5):], w[j*k:(j+1)*k])
		}
		for p := range k {
			copy(wTS[p*(n+3):], wT[p*n:(p+1)*n])
		}
		for _, l := range []struct {
			name string
			l    layoutB
			a    []float32
		}{{"rowsB", rowsB(wT, n, k, n), a}, {"columnsB", columnsB(w, k, n, k), a}, {"weightsB", weightsB(kept), a2},
			{"rowsB strided", rowsB(wTS, n+3, k, n), a}, {"columnsB strided", columnsB(wS, k+5, n, k), a}} {
			var pb packedB
			l.l.pack(&pb)
			want := make([]float32, m*l.l.n)
			gemm(kern, want, l.l.n, l.a, l.l.k, m, &pb, epilogue{}, 1)
			got := make([]float32, m*l.l.n)
			sk.unpacked(got, l.l.n, l.a, l.l.k, m, l.l)
			for i := range want {
				if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
					t.Fatalf("%s %s: [%d] = %g from the layout, %g from Go's panels", name, l.name, i, got[i], want[i])
				}
			}
		}

		// Attention's layout: A rows and C rows strided, B packed per call.
		lda, ldc := k+5, n+3
		as, cs := make([]float32, m*lda), randSlice(rng, m*ldc)
		for i := 0; i < m; i++ {
			copy(as[i*lda:], a[i*k:(i+1)*k])
		}
		var pb packedB
		pb.packBT(w, k, n, k)
		before := append([]float32(nil), cs...)
		gemm(kern, cs, ldc, as, lda, m, &pb, epilogue{}, 1)
		for i := 0; i < m; i++ {
			expectNear(t, fmt.Sprintf("%s strided row %d", name, i), cs[i*ldc:i*ldc+n], want[i*n:(i+1)*n], tol)
			for j := n; j < ldc && i*ldc+j < len(cs); j++ {
				if cs[i*ldc+j] != before[i*ldc+j] {
					t.Fatalf("%s strided: wrote past column n at row %d", name, i)
				}
			}
		}
	}
}

// The module's GELU, in the epilogue and alone, rounds exactly as vit.GELU's Go loop, over
// the whole range (a product never yields -0: its sums start at +0): zero, tiny, the clamp of erf at ±4 (|x| ≈ 5.66), large
// and odd counts (the vector loop's scalar tail). k = 1 and A = 1 make the
// product's output the chosen values themselves.
func TestSIMDGELUExact(t *testing.T) {
	if simd == nil {
		t.Skip(simdErr)
	}
	rng := rand.New(rand.NewPCG(15, 16))
	vals := []float32{0, 1e-30, -1e-30, 1, -1, 5.656, 5.657, -5.656, -5.657, 40, -40, 3e38, -3e38}
	for range 1001 {
		vals = append(vals, float32(rng.NormFloat64()*4))
	}
	n := len(vals)
	var b packedB
	b.packBN(vals, n, 1, n) // B is the 1×n row of values
	got := make([]float32, n)
	gemm(pickKernel("simd"), got, n, []float32{1}, 1, 1, &b, epilogue{gelu: true}, 1)
	want := make([]float32, n) // GELU's Go loop, without the module
	for i, v := range vals {
		want[i] = 0.5 * v * (1 + Erf32(v*invSqrt2))
	}
	for i := range want {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Fatalf("GELU(%g): module %g, Go %g", vals[i], got[i], want[i])
		}
	}
	// GELU itself, applied after a product (the forward's when it taps
	// the pre-activations), runs in the module too: the same bits.
	if !vectorActivations {
		return
	}
	// Many times over and an odd count: in the threaded build, a job of
	// several chunks whose last is short.
	got = got[:0]
	for range 3*geluPerChunk/n + 1 {
		got = append(got, vals...)
	}
	got = got[:len(got)-3]
	GELU(got)
	for i := range got {
		if math.Float32bits(got[i]) != math.Float32bits(want[i%n]) {
			t.Fatalf("GELU(%g) after the product, at %d of %d: module %g, Go %g", vals[i%n], i, len(got), got[i], want[i%n])
		}
	}
}

func tiledBias(bias []float32, m int) []float32 {
	out := make([]float32, 0, m*len(bias))
	for range m {
		out = append(out, bias...)
	}
	return out
}

// expectNear fails unless got and want agree elementwise within tol
// relative to max(1, |want|).
func expectNear(t *testing.T, what string, got, want []float32, tol float64) {
	t.Helper()
	for i := range want {
		d := math.Abs(float64(got[i]) - float64(want[i]))
		if d > tol*math.Max(1, math.Abs(float64(want[i]))) || math.IsNaN(d) {
			t.Fatalf("%s: [%d] = %g, scalar path %g", what, i, got[i], want[i])
		}
	}
}

// The module's memory allocator reuses and merges freed spans and lowers
// its top when the highest span is freed.
func TestSIMDAllocator(t *testing.T) {
	if simd == nil {
		t.Skip(simdErr)
	}
	k, err := newSIMDKernel() // a fresh instance: nothing allocated yet
	if err != nil {
		t.Fatal(err)
	}
	top := k.top
	var s [3]span
	for i := range s {
		if s[i], err = k.alloc(100 + i); err != nil {
			t.Fatal(err)
		}
		if s[i].off%64 != 0 || s[i].size < 100+i {
			t.Fatalf("span %+v for %d bytes", s[i], 100+i)
		}
	}
	k.release(s[1])
	if again, _ := k.alloc(64); again.off != s[1].off {
		t.Fatalf("a freed span was not reused: got %+v, freed %+v", again, s[1])
	} else {
		k.release(again)
	}
	k.release(s[0])
	if len(k.free) != 1 || k.free[0] != (span{s[0].off, s[0].size + s[1].size}) {
		t.Fatalf("freed neighbours not merged: %+v", k.free)
	}
	k.release(s[2])
	if k.top != top || len(k.free) != 0 {
		t.Fatalf("after freeing everything: top %d (was %d), free %+v", k.top, top, k.free)
	}
}

// Kept weights leave the module's memory when their packedB is collected.
func TestSIMDKeptWeightsReleased(t *testing.T) {
	if simd == nil {
		t.Skip(simdErr)
	}
	kern := pickKernel("simd")
	run := func() weak.Pointer[packedB] {
		kept := &packedB{kept: true}
		kept.packBT(make([]float32, 64*1000), 1000, 64, 1000)
		gemm(kern, make([]float32, 64), 64, make([]float32, 1000), 1000, 1, kept, epilogue{}, 1)
		return weak.Make(kept)
	}
	key := run()
	held := func() bool {
		simd.mu.Lock()
		defer simd.mu.Unlock()
		_, ok := simd.kept[key]
		return ok
	}
	if !held() {
		t.Fatal("kept weights were not copied into the module")
	}
	for range 200 { // cleanups run on their own goroutine after a GC
		runtime.GC()
		time.Sleep(time.Millisecond)
		if !held() {
			return
		}
	}
	t.Fatal("the weights of a collected packedB stayed in the module's memory")
}

// nodeCPU is the process's CPU time in seconds (Node's process.cpuUsage).
// Go's wasm runs on one thread, so it counts this program's work alone,
// where wall time on a shared machine also counts the other jobs'.
func nodeCPU() float64 {
	u := js.Global().Get("process").Call("cpuUsage")
	return (u.Get("user").Float() + u.Get("system").Float()) / 1e6
}

// A single product (MatMulT, LinearForward: the explain backward's
// transposed weights) copies its operand per call instead of keeping it in
// the module until a GC; PackT's weights are kept.
func TestSIMDKeepsOnlyPackedWeights(t *testing.T) {
	if simd == nil || activeKernel == nil {
		t.Skip("the SIMD kernel is not the active one")
	}
	kept := func() int {
		simd.mu.Lock()
		defer simd.mu.Unlock()
		return len(simd.kept)
	}
	rng := rand.New(rand.NewPCG(17, 18))
	a, w, out := randSlice(rng, 3*40), randSlice(rng, 20*40), make([]float32, 3*20)
	before := kept() // other tests' copies may leave meanwhile, never arrive
	MatMulT(out, a, w, 3, 20, 40)
	LinearForward(out, a, 3, Linear{W: w, Out: 20, In: 40})
	if kept() > before {
		t.Fatalf("single products left %d copies in the module", kept()-before)
	}
	p := PackT(w, 20, 40)
	p.MatMulT(out, a, 3, nil, false)
	simd.mu.Lock()
	_, ok := simd.kept[weak.Make(p.packed)]
	simd.mu.Unlock()
	if !ok {
		t.Fatal("PackT's weights were not kept in the module")
	}
}

// BenchmarkForwardCPU is BenchmarkForward's B/16 image with its CPU time
// beside the wall time; VITLENS_GEMM=scalar runs the scalar path in the
// same binary.
func BenchmarkForwardCPU(b *testing.B) {
	m, img := benchForwardInput(b, "B16")
	wall, used := math.Inf(1), math.Inf(1)
	for b.Loop() {
		start, c0 := time.Now(), nodeCPU()
		if _, err := m.Forward(img, Options{}); err != nil {
			b.Fatal(err)
		}
		wall, used = min(wall, time.Since(start).Seconds()), min(used, nodeCPU()-c0)
	}
	b.ReportMetric(wall*1e3, "ms/image")
	b.ReportMetric(used*1e3, "cpu-ms/image")
	b.Logf("matmul path %s", GEMMKernel())
}

// BenchmarkMatMulCPU is BenchmarkMatMul's B/16 products on the SIMD module
// and the scalar loop, in GFLOP per CPU second (best of the runs).
func BenchmarkMatMulCPU(b *testing.B) {
	if simd == nil {
		b.Skip(simdErr)
	}
	rng := rand.New(rand.NewPCG(1, 1))
	kern := pickKernel("simd")
	for _, s := range []struct {
		name    string
		m, n, k int
	}{
		{"qkv_197x768x2304", 197, 2304, 768},
		{"fc2_197x3072x768", 197, 768, 3072},
		{"scores_197x64x197", 197, 197, 64},
	} {
		x, w, out := randSlice(rng, s.m*s.k), randSlice(rng, s.n*s.k), make([]float32, s.m*s.n)
		timed := func(b *testing.B, run func()) {
			run() // the first product copies the weights into the module
			best := math.Inf(1)
			for b.Loop() {
				c0 := nodeCPU()
				run()
				best = min(best, nodeCPU()-c0)
			}
			b.ReportMetric(2*float64(s.m*s.n*s.k)/best/1e9, "GFLOP/cpu-s")
		}
		b.Run(s.name+"/simd", func(b *testing.B) {
			kept := &packedB{kept: true}
			kept.packBT(w, s.k, s.n, s.k)
			timed(b, func() { gemm(kern, out, s.n, x, s.k, s.m, kept, epilogue{}, 1) })
		})
		b.Run(s.name+"/scalar2x4", func(b *testing.B) {
			timed(b, func() { matMulTScalar(out, x, w, s.m, s.n, s.k) })
		})
	}
}

// The module's GELU derivative (geluGrad) rounds exactly as GELUGrad's Go
// loop (geluDeriv) over the whole range: zero, tiny, the clamp of erf at ±4
// (|x| ≈ 5.66), the flush of φ at |x| ≈ 13.2, the float32 ends, and counts
// that leave part of the last vector of four empty.
func TestSIMDGELUGradExact(t *testing.T) {
	if !vectorActivations {
		t.Skip("the SIMD module is not the active path")
	}
	rng := rand.New(rand.NewPCG(21, 22))
	xs := []float32{0, 1e-30, -1e-30, 1, -1, 5.656, 5.657, -5.656, -5.657, 13.2, 13.22, -13.2, -13.22, 40, -40,
		3e38, -3e38, float32(math.Inf(1)), float32(math.NaN())}
	for range 1001 {
		xs = append(xs, float32(rng.NormFloat64()*4))
	}
	for _, n := range []int{len(xs), len(xs) - 1, len(xs) - 2, 3, 1} {
		g := randSlice(rng, n)
		want := append([]float32(nil), g...)
		for i, x := range xs[:n] {
			want[i] *= geluDeriv(x)
		}
		GELUGrad(g, xs[:n])
		for i := range want {
			if math.Float32bits(g[i]) != math.Float32bits(want[i]) && !(math.IsNaN(float64(g[i])) && math.IsNaN(float64(want[i]))) {
				t.Fatalf("%d values: g·GELU'(%g): module %g, Go %g", n, xs[i], g[i], want[i])
			}
		}
	}
}

// Attention's heads in the threaded module (attentionHeadsKernel) against
// head's Go path, bit for bit: the output, the probabilities and the values,
// on a Ti-like and a B/16-like shape, and with scores so large that
// exponentials leave Exp32's range and the module hands heads back to Go.
func TestAttentionHeadsKernelMatchesGo(t *testing.T) {
	if attentionHeadsKernel == nil || !threadedModule() {
		t.Skip("no threaded module here (make wasm-check runs this with node_threads_exec)")
	}
	rng := rand.New(rand.NewPCG(21, 22))
	for _, c := range []struct {
		n, heads, dh int
		spread       float64
	}{{37, 3, 24, 1}, {197, 12, 64, 1}, {50, 4, 16, 40}} {
		d := c.heads * c.dh
		qkv := make([]float32, c.n*3*d)
		for i := range qkv {
			qkv[i] = float32(rng.NormFloat64() * c.spread)
		}
		tokens := make([]int, c.n)
		for i := range tokens {
			tokens[i] = i
		}
		run := func() ([]float32, *Tensor, *Tensor) {
			out := make([]float32, c.n*d)
			probs, values := Attention(out, qkv, c.n, c.heads, c.dh, EditNone, tokens, true, true)
			return out, probs, values
		}
		out, probs, values := run()
		saved := attentionHeadsKernel
		attentionHeadsKernel = nil
		goOut, goProbs, goValues := run()
		attentionHeadsKernel = saved
		left, _ := attentionHeadsKernel(make([]float32, c.n*d), qkv, c.n, c.heads, c.dh, 0.125, nil)
		if handed := slices.Contains(left, true); handed != (c.spread > 1) {
			t.Errorf("spread %g: heads handed back to Go %v", c.spread, left)
		}
		if !slices.Equal(out, goOut) || !slices.Equal(probs.Data, goProbs.Data) || !slices.Equal(values.Data, goValues.Data) {
			t.Errorf("n %d, %d heads of %d, spread %g: the module's attention differs from Go's", c.n, c.heads, c.dh, c.spread)
		}
	}
}

// BenchmarkModuleCopy times the copies between Go's memory and the SIMD
// module's, which every product pays for its A and C (put, get): a B/16
// FC1 output's size, into a reused slice and into a new one each time.
func BenchmarkModuleCopy(b *testing.B) {
	if simd == nil {
		b.Skip(simdErr)
	}
	const n = 197 * 3072
	s, err := simd.alloc(4 * n)
	if err != nil {
		b.Fatal(err)
	}
	defer simd.release(s)
	x := make([]float32, n)
	rate := func(b *testing.B) { b.SetBytes(4 * n) }
	b.Run("put", func(b *testing.B) {
		rate(b)
		for b.Loop() {
			simd.put(s.off, x)
		}
	})
	b.Run("get", func(b *testing.B) {
		rate(b)
		for b.Loop() {
			simd.get(x, s.off)
		}
	})
	b.Run("get-new", func(b *testing.B) {
		rate(b)
		for b.Loop() {
			simd.get(make([]float32, n), s.off)
		}
	})
}

// Where the threaded module runs, Linear.MatMulGELUGrad is its job (which
// TestLinearMatMulGELUGradMatchesTwin holds to the Go twin), not the twin.
func TestMatMulGELUGradRunsInModule(t *testing.T) {
	if !threadedModule() {
		t.Skip("no threaded module (VITLENS_THREADS under vit/wasmkernel/node_threads_exec)")
	}
	rng := rand.New(rand.NewPCG(11, 12))
	l := Linear{In: 40, Out: 24, W: randomWeights(rng, 40*24)}
	l.Pack()
	out := make([]float32, 3*40)
	if !matMulGELUGradKernel(out, randomWeights(rng, 3*24), 3, weightsB(l.packed.packed), randomWeights(rng, 3*40)) {
		t.Fatal("the threaded module did not run Linear.MatMulGELUGrad")
	}
}
