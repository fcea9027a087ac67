//go:build js && !purego

package vit

import (
	_ "embed"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"syscall/js"
	"unsafe"
	"weak"
)

// The browser build's matrix product. Go's wasm port emits no SIMD
// instructions, so the packed GEMM runs in a small WebAssembly module of its
// own, compiled from wasmkernel/gemm.c with simd128 (`make wasm-kernel`) and
// instantiated here through syscall/js with its own linear memory. Go
// cannot call into it per 6×16 tile (a call through syscall/js costs
// microseconds), so the module computes whole products: the packed weights
// are copied into its memory once per matrix, A in and C out per call (a
// few hundred KiB against 10⁸ multiply-adds at ViT sizes), with the bias and
// GELU added there (its GELU rounds exactly as vit.GELU's Go loop does).

//go:embed wasmkernel/gemm.wasm
var simdWasm []byte

// gemm.wasm with relaxed SIMD, for the engine's worker where the page is not
// cross-origin isolated (no threads): newSIMDKernel.
//
//go:embed wasmkernel/gemm_fma.wasm
var simdFMAWasm []byte

// The same kernel built for threads: it imports a shared memory, on which
// helper Web Workers (public/web/gemm-worker.js) instantiate it too.
//
//go:embed wasmkernel/gemm_threads.wasm
var simdThreadsWasm []byte

// The threaded build with relaxed SIMD: its micro-kernel multiplies and adds
// in one f32x4.relaxed_madd (fused where the CPU has FMA), 10-18% faster
// forwards than simd128's separate multiply and add. Loaded first where the
// engine validates it (newThreadedKernel), as gemm_fma.wasm is
// (newSIMDKernel); VITLENS_RELAXED_SIMD=off skips both.
//
//go:embed wasmkernel/gemm_threads_fma.wasm
var simdThreadsFMAWasm []byte

const wasmPage = 1 << 16

// simd is the instantiated module, nil where this JavaScript engine has no
// WebAssembly SIMD; simdErr says why.
var simd, simdErr = newThreadedOrSingle()

// simdThreads reports how many threads the browser build's matmul uses:
// the caller and the helper workers that have started (they count
// themselves in the control block), 1 without the threaded kernel.
func simdThreads() int {
	if simd == nil || simd.threads == 1 {
		return 1
	}
	simd.mu.Lock()
	defer simd.mu.Unlock()
	b := make([]byte, 4)
	js.CopyBytesToGo(b, simd.view.Call("subarray", simd.ctl.off+4*ctlHelpers, simd.ctl.off+4*ctlHelpers+4))
	return 1 + min(simd.threads-1, int(int32(binary.LittleEndian.Uint32(b))))
}

func init() {
	relaxedSIMD = simd != nil && simd.relaxed
	wholeThreads = func() int {
		if GEMMKernel() != "simd" {
			return 1
		}
		return simdThreads()
	}
}

func fmaPeak(iters int) float64 { return 0 }

func asmKernels() []gemmKernel {
	if simd == nil {
		return nil
	}
	return []gemmKernel{{name: "simd", run: simd.microKernel, whole: simd.gemm, unpacked: simd.unpacked}}
}

// simdKernel is one instance of the module and the allocator of its memory:
// the kept weights, each in a span of its own, and one scratch span reused
// by every call.
type simdKernel struct {
	mu          sync.Mutex
	chunksFn    js.Value // gemmChunks(ctl, tid): the whole product on one thread
	parallelFn  js.Value // gemmParallel(ctl): the product with the helpers; threaded build only
	packedASize js.Value
	work        int      // floats of a thread's working space in a product: packedASize(0, 0)
	geluFn      js.Value // gelu(x, n) and geluGrad(g, x, n): activation_js.go
	geluGradFn  js.Value
	threads     int  // the caller and its helpers
	threaded    bool // the threaded build: its class rows and heads run at 1 thread too (runChunks)
	relaxed     bool // a relaxed-SIMD build (gemm_fma.wasm, gemm_threads_fma.wasm)
	split       int  // chunks per thread a product is cut into
	minChunk    int  // the least work (multiply-adds) a chunk gets: chunkMinWork
	ctl         span // the control block (gemm.c's CTL_WORDS int32s)
	memory      js.Value
	module      js.Value // the compiled module, which helpers instantiate too
	view        js.Value // Uint8Array over memory.buffer; a grow detaches it
	size, top   int      // bytes of memory; end of the highest span in use
	free        []span   // spans below top not in use, by offset
	kept        map[weak.Pointer[packedB]]span
	scratch     span
	// classRowWords is the length of the threaded build's class-row job
	// (classrows_js.go), 0 in the single-threaded build, which has none.
	classRowWords int
	// headWords is the length of its attention job (heads_js.go), 0 in
	// the single-threaded build; headScratch(n, dh) a thread's floats.
	headWords   int
	headScratch js.Value
	// backHeadWords and backHeadScratch are the same for the backward of
	// attention's heads (attnback_js.go).
	backHeadWords   int
	backHeadScratch js.Value
	// rolloutWords is the length of its rollout rows' job (rollout_js.go).
	rolloutWords int
	// topRowWords is the length of its top rows' job (toprows_js.go).
	topRowWords int
	// normBackWords is the length of its LayerNorm backward job
	// (normback_js.go).
	normBackWords int
}

// span is a range of the module's memory, in bytes.
type span struct{ off, size int }

// newSIMDKernel instantiates the single-threaded build: off the main thread
// (the engine's worker without cross-origin isolation, Node) the
// relaxed-SIMD one where the engine validates it, any size compiling there;
// on the page's main thread gemm.wasm, which Chromium compiles synchronously
// there only up to 4 KiB.
func newSIMDKernel() (*simdKernel, error) {
	if relaxedAllowed() && !js.Global().Get("document").Truthy() {
		if k, err := instantiateKernel(simdFMAWasm, js.Undefined()); err == nil {
			k.relaxed = true
			return k, nil
		}
	}
	return instantiateKernel(simdWasm, js.Undefined())
}

// relaxedAllowed reports whether the relaxed-SIMD builds may be tried:
// unless VITLENS_RELAXED_SIMD=off (the page's ?relaxed=off).
func relaxedAllowed() bool { return os.Getenv("VITLENS_RELAXED_SIMD") != "off" }

// instantiateKernel instantiates code, on the shared memory when one is
// given (the threaded build imports it), else on a memory of its own.
func instantiateKernel(bin []byte, memory js.Value) (k *simdKernel, err error) {
	defer func() {
		if r := recover(); r != nil { // a js.Error from a throwing call
			k, err = nil, fmt.Errorf("WebAssembly SIMD kernel: %v", r)
		}
	}()
	wasm := js.Global().Get("WebAssembly")
	if wasm.IsUndefined() {
		return nil, errors.New("WebAssembly SIMD kernel: no WebAssembly object")
	}
	code := js.Global().Get("Uint8Array").New(len(bin))
	js.CopyBytesToJS(code, bin)
	// The module itself is the feature check: it uses simd128 throughout,
	// so an engine without SIMD finds it invalid.
	if !wasm.Call("validate", code).Bool() {
		return nil, errors.New("WebAssembly SIMD kernel: this engine has no WebAssembly SIMD (simd128) or threads")
	}
	// Compiled synchronously: Chromium allows that on the main thread for
	// modules up to 4 KiB, which wasmkernel_test.go holds this one to.
	mod := wasm.Get("Module").New(code)
	imports := js.Global().Get("Object").New()
	if !memory.IsUndefined() {
		env := js.Global().Get("Object").New()
		env.Set("memory", memory)
		imports.Set("env", env)
	}
	exports := wasm.Get("Instance").New(mod, imports).Get("exports")
	k = &simdKernel{
		chunksFn:    exports.Get("gemmChunks"),
		parallelFn:  exports.Get("gemmParallel"),
		packedASize: exports.Get("packedASize"),
		geluFn:      exports.Get("gelu"),
		geluGradFn:  exports.Get("geluGrad"),
		memory:      memory,
		threads:     1,
		split:       1,
		minChunk:    chunkMinWork,
		kept:        map[weak.Pointer[packedB]]span{},
	}
	if memory.IsUndefined() {
		k.memory = exports.Get("memory")
	}
	k.module = mod
	k.work = k.packedASize.Invoke(0, 0).Int()
	// Below __heap_base lie the module's stack and data.
	k.top = (exports.Get("__heap_base").Get("value").Int() + 63) &^ 63
	k.remap()
	if words := exports.Get("ctlWords").Invoke().Int(); words != ctlWords {
		return nil, fmt.Errorf("WebAssembly SIMD kernel: its control block has %d words, vit/gemm_js.go writes %d: rebuild it (make wasm-kernel)", words, ctlWords)
	}
	// The threaded build's jobs, each an argument block whose length the
	// module exports and Go writes: a stale build is refused here (the
	// scalar loop runs) instead of reading a job's block wrong.
	for _, j := range []struct {
		export string
		want   int
		have   *int
	}{{"classRowWords", classRowWords, &k.classRowWords}, {"headWords", headWords, &k.headWords},
		{"backHeadWords", backHeadWords, &k.backHeadWords}, {"rolloutWords", rolloutWords, &k.rolloutWords},
		{"topRowWords", topRowWords, &k.topRowWords}, {"normBackWords", normBackWords, &k.normBackWords}} {
		f := exports.Get(j.export)
		if !f.Truthy() {
			continue // the one-thread build has no jobs
		}
		if n := f.Invoke().Int(); n != j.want {
			return nil, fmt.Errorf("WebAssembly SIMD kernel: its %s() is %d, vit writes %d: rebuild it (make wasm-kernel)", j.export, n, j.want)
		}
		*j.have = j.want
	}
	k.headScratch, k.backHeadScratch = exports.Get("headScratch"), exports.Get("backHeadScratch")
	if k.ctl, err = k.alloc(4 * ctlWords); err != nil {
		return nil, err
	}
	k.put(k.ctl.off, make([]float32, k.ctl.size/4)) // GEN even, ACTIVE 0
	return k, nil
}

// remap renews the view of the module's memory after it grew.
func (k *simdKernel) remap() {
	buf := k.memory.Get("buffer")
	k.view = js.Global().Get("Uint8Array").New(buf)
	k.size = buf.Get("byteLength").Int()
}

// alloc takes a span of at least size bytes (64-byte aligned), first fit,
// growing the memory when no free span is large enough.
func (k *simdKernel) alloc(size int) (s span, err error) {
	size = (size + 63) &^ 63
	for i, f := range k.free {
		if f.size >= size {
			if f.size == size {
				k.free = slices.Delete(k.free, i, i+1)
			} else {
				k.free[i] = span{f.off + size, f.size - size}
			}
			return span{f.off, size}, nil
		}
	}
	if need := k.top + size - k.size; need > 0 {
		if err := k.grow((need + wasmPage - 1) / wasmPage); err != nil {
			return span{}, err
		}
	}
	s = span{k.top, size}
	k.top += size
	return s, nil
}

func (k *simdKernel) grow(pages int) (err error) {
	defer func() {
		if r := recover(); r != nil { // RangeError: past the engine's limit
			err = fmt.Errorf("WebAssembly SIMD kernel: cannot grow its memory of %d MiB by %d MiB: %v",
				k.size>>20, pages*wasmPage>>20, r)
		}
	}()
	k.memory.Call("grow", pages)
	k.remap()
	return nil
}

// release returns s to the free list, merged with its neighbours; a free
// span at the top lowers the top instead.
func (k *simdKernel) release(s span) {
	if s.size == 0 {
		return
	}
	i, _ := slices.BinarySearchFunc(k.free, s.off, func(f span, off int) int { return f.off - off })
	k.free = slices.Insert(k.free, i, s)
	if i+1 < len(k.free) && k.free[i].off+k.free[i].size == k.free[i+1].off {
		k.free[i].size += k.free[i+1].size
		k.free = slices.Delete(k.free, i+1, i+2)
	}
	if i > 0 && k.free[i-1].off+k.free[i-1].size == k.free[i].off {
		k.free[i-1].size += k.free[i].size
		k.free = slices.Delete(k.free, i, i+1)
		i--
	}
	if last := k.free[len(k.free)-1]; last.off+last.size == k.top {
		k.top = last.off
		k.free = k.free[:len(k.free)-1]
	}
}

func float32Bytes(x []float32) []byte {
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(x))), 4*len(x))
}

// put copies x into the module's memory at byte offset off.
func (k *simdKernel) put(off int, x []float32) {
	if len(x) > 0 {
		b := float32Bytes(x)
		js.CopyBytesToJS(k.view.Call("subarray", off, off+len(b)), b)
	}
}

// get copies the module's memory at byte offset off into x.
func (k *simdKernel) get(x []float32, off int) {
	if len(x) > 0 {
		b := float32Bytes(x)
		js.CopyBytesToGo(b, k.view.Call("subarray", off, off+len(b)))
	}
}

// weights returns where the module holds b: kept weights are copied in once
// and released when b is collected. Go's packed copy stays: it is the
// model's only copy of its weights (Model.Pack drops W), which the GPU
// upload, the explain backward and the lens read out of the panels.
func (k *simdKernel) weights(b *packedB) (span, bool, error) {
	if !b.kept {
		return span{}, false, nil
	}
	key := weak.Make(b)
	if s, ok := k.kept[key]; ok {
		return s, true, nil
	}
	s, err := k.alloc(4 * len(b.data))
	if err != nil {
		return span{}, false, err
	}
	k.put(s.off, b.data)
	k.kept[key] = s
	runtime.AddCleanup(b, func(key weak.Pointer[packedB]) {
		k.mu.Lock()
		defer k.mu.Unlock()
		k.release(k.kept[key])
		delete(k.kept, key)
	}, key)
	return s, true, nil
}

// gemm is the whole-product entry of gemmKernel: out[i*ldc+j] = ep(Σ_p
// a[i*lda+p]·B[p,j]) for i < m, j < b.n, as gemm.go's loops compute it.
func (k *simdKernel) gemm(out []float32, ldc int, a []float32, lda, m int, b *packedB, ep epilogue) {
	k.product(out, ldc, a, lda, m, layoutB{k: b.k, n: b.n, data: b.data, panels: b}, ep, nil)
}

// unpacked is gemmKernel.unpacked: the module packs each micro-panel of B
// from its layout as it reaches it (gemm.c's packB), so a single product
// copies B in as it lies, or not at all when it lies in kept panels
// (Linear.MatMul's x·W reads the panels of Wᵀ the forward copied in).
func (k *simdKernel) unpacked(out []float32, ldc int, a []float32, lda, m int, b layoutB) {
	// A strided row-major b (attention's keys and values in qkv) is
	// gathered into contiguous rows first: the module would otherwise be
	// sent the whole span its rows lie in.
	var gathered *[]float32
	switch {
	case b.panels == nil && b.row == 1 && b.col > b.k: // rows of bᵀ
		gathered = gatherRows(b.data, b.col, b.n, b.k)
		b = columnsB(*gathered, b.k, b.n, b.k)
	case b.panels == nil && b.col == 1 && b.row > b.n:
		gathered = gatherRows(b.data, b.row, b.k, b.n)
		b = rowsB(*gathered, b.n, b.k, b.n)
	}
	k.product(out, ldc, a, lda, m, b, epilogue{}, nil)
	if gathered != nil {
		scratch.Put(gathered)
	}
}

// gatherRows copies rows rows of n floats, row i at x[i*ld:], into pooled
// scratch, contiguous.
func gatherRows(x []float32, ld, rows, n int) *[]float32 {
	g := getScratch(rows * n)
	for i := range rows {
		copy((*g)[i*n:(i+1)*n], x[i*ld:])
	}
	return g
}

// packBReach is how many floats from the start of an unpacked B gemm.c's
// packB reads: four rows at a time, so up to the row k rounded up to 4, and
// in row-major B (row ≠ 1) whole panels of 16 columns.
func packBReach(b layoutB) int {
	if b.k == 0 {
		return 0
	}
	p, j := (b.k+3)&^3-1, b.n-1
	if b.row != 1 {
		j = (b.n+gemmNR-1)&^(gemmNR-1) - 1
	}
	return p/gemmNR*b.block + p%gemmNR*b.row + j*b.col + 1
}

// product runs one product; b.col 0 means B is packed panels (b.data).
// A geluGradOf (m×b.n, row-major; the threaded build only) multiplies the
// product by GELU' of it, each chunk its own columns.
func (k *simdKernel) product(out []float32, ldc int, a []float32, lda, m int, b layoutB, ep epilogue, geluGradOf []float32) {
	k.mu.Lock()
	defer k.mu.Unlock()
	n, kk := b.n, b.k
	var w span
	kept := false
	if b.panels != nil {
		var err error
		if w, kept, err = k.weights(b.panels); err != nil {
			panic(err)
		}
	}
	bData, bSize := b.data, len(b.data)
	if b.col != 0 { // what packB reads: the layout's reach, past b's end by a few floats
		bSize = packBReach(b)
		bData = bData[:min(len(bData), bSize)]
	}
	// One scratch span: A (m×k), C (m×n), the bias, A packed (once, by
	// all threads together, packedASize less the WORK that each thread
	// has next), and B itself when it is not kept (attention's operands,
	// single products).
	aOff := 0
	cOff := aOff + 4*m*kk
	biasOff := cOff + 4*m*n
	apOff := biasOff + 4*n
	workOff := apOff + (4*(k.packedASize.Invoke(m, kk).Int()-k.work)+63)&^63
	workStride := (4*k.work + 63) &^ 63
	xOff := workOff + k.threads*workStride
	bOff := xOff
	if geluGradOf != nil {
		bOff += 4 * m * n
	}
	need := bOff
	if !kept {
		need += 4 * bSize
	}
	base := k.scratchAt(need)
	if kept {
		bOff = w.off
	} else {
		bOff += base
		k.put(bOff, bData)
	}
	k.putRows(base+aOff, a, lda, m, kk)
	if ep.accumulate {
		k.putRows(base+cOff, out, ldc, m, n)
	}
	bias := 0
	if ep.bias != nil {
		bias = base + biasOff
		k.put(bias, ep.bias[:n])
	}
	geluGrad := 0
	if geluGradOf != nil {
		geluGrad = base + xOff
		k.put(geluGrad, geluGradOf[:m*n])
	}
	chunks, per := splitPanels((n+gemmNR-1)/gemmNR, k.chunksFor(m, n, kk))
	ctl := [...]int32{ctlChunks: int32(chunks), ctlPer: int32(per), ctlC: int32(base + cOff), ctlA: int32(base + aOff),
		ctlB: int32(bOff), ctlApack: int32(base + apOff), ctlWork: int32(base + workOff), ctlWorkStride: int32(workStride), ctlM: int32(m), ctlN: int32(n),
		ctlK: int32(kk), ctlAcc: int32(flag(ep.accumulate)), ctlBias: int32(bias), ctlGELU: int32(flag(ep.gelu)), ctlGELUGrad: int32(geluGrad), ctlOp: opGEMM,
		ctlBBlock: int32(b.block), ctlBRow: int32(b.row), ctlBCol: int32(b.col)}
	// GEN, ACTIVE and HELPERS are the threads' own.
	k.putWords(k.ctl.off+4*ctlNext, ctl[ctlNext:ctlHelpers])
	k.putWords(k.ctl.off+4*ctlBBlock, ctl[ctlBBlock:])
	k.runChunks(chunks)
	if ldc == n {
		k.get(out[:m*n], base+cOff)
	} else {
		c := getScratch(m * n)
		k.get(*c, base+cOff)
		for i := 0; i < m; i++ {
			copy(out[i*ldc:i*ldc+n], (*c)[i*n:])
		}
		scratch.Put(c)
	}
}

// scratchAt returns the offset of the scratch span, grown to need bytes
// first when it is smaller: what one call copies in and out.
func (k *simdKernel) scratchAt(need int) int {
	if k.scratch.size < need {
		k.release(k.scratch)
		k.scratch = span{}
		var err error
		if k.scratch, err = k.alloc(need); err != nil {
			panic(err)
		}
	}
	return k.scratch.off
}

// runChunks runs the job just written into the control block: with the
// helpers (gemmParallel) where there are some and the job has more than one
// chunk, else on the caller alone (gemmChunks with tid 0, which takes every
// chunk): the single-threaded build, and the threaded one at 1 thread.
func (k *simdKernel) runChunks(chunks int) {
	if k.threads > 1 && chunks > 1 {
		k.parallelFn.Invoke(k.ctl.off)
	} else {
		k.chunksFn.Invoke(k.ctl.off, 0)
	}
}

// runJob runs one of the threaded module's jobs other than a product (op;
// its words at byte offset args): items rows or heads, cut into chunks of
// about perChunk each, on the caller and its helpers.
func (k *simdKernel) runJob(op, args, items, perChunk int) {
	chunks, per := splitPanels(items, (items+perChunk-1)/perChunk)
	ctl := [...]int32{ctlChunks: int32(chunks), ctlPer: int32(per), ctlA: int32(args), ctlM: int32(items), ctlOp: int32(op)}
	k.putWords(k.ctl.off+4*ctlNext, ctl[ctlNext:ctlHelpers])
	k.runChunks(chunks)
}

// jobLayout places a job's parts in the one scratch span (scratchAt),
// each at a 64-byte aligned offset; need is the span's size so far.
type jobLayout struct{ need int }

func (l *jobLayout) part(bytes int) int {
	off := l.need
	l.need += (bytes + 63) &^ 63
	return off
}

// The control block's words (gemm.c's enum).
const (
	ctlGen = iota
	ctlActive
	ctlNext
	ctlDone
	ctlPackNext
	ctlPackDone
	ctlChunks
	ctlPer
	ctlC
	ctlA
	ctlB
	ctlApack
	ctlWork
	ctlWorkStride
	ctlM
	ctlN
	ctlK
	ctlAcc
	ctlBias
	ctlGELU
	ctlGELUGrad
	ctlOp
	ctlHelpers
	ctlBBlock
	ctlBRow
	ctlBCol
	ctlWords
)

// chunkMinWork is the least work (multiply-adds) worth a chunk of its own:
// about 50 µs of the module's loop on one thread, several times what it
// takes a sleeping helper to wake (memory.atomic.notify to a worker's
// wait32) and the caller to see it leave. Under Node with 2 threads (best
// of 200 products), attention's 197×197×64 products went from 4 chunks of
// one panel (28 GFLOP/s, slower than one thread's 36) to 2 (35-36), and
// 197×64·64×197 kept its gain (45 against one thread's 37); the
// backward's smaller products stay on the caller.
const chunkMinWork = 1 << 20

// productSplit is how many chunks per thread a product is cut into. With A
// packed once for all threads (packShared) a chunk costs only an atomic add,
// so finer chunks should have shortened the threads' wait for the last one,
// but 12 a thread was no faster than 4 under Node at 2 threads (B/16's
// forward 590-610 against 592-607 ms, the explanation maps 716-740 against
// 676-737 ms, fastest of 4 images a run, load 1.2-3.4), nor were 8 and 16
// for the lens stage: finer chunks read A again per k-slice from L3 where
// coarse ones find it in L2.
const productSplit = 4

// chunksFor is how many chunks an m×n×k product is cut into: split per
// thread, fewer where a chunk would hold less than chunkMinWork, and 1,
// the caller alone without waking a helper, for a small product.
func (k *simdKernel) chunksFor(m, n, kk int) int {
	return max(1, min(k.threads*k.split, m*n*kk/k.minChunk))
}

// What a job's chunks are (gemm.c's OP_ enum): a product's column panels,
// or, in the threaded build, rows of the lens's class logits
// (classrows_js.go), attention's heads (heads_js.go), their backward
// (attnback_js.go), the rollout's rows (rollout_js.go), the memories'
// top rows (toprows_js.go), GELU alone (activation_js.go) or LayerNorm's
// backward (normback_js.go).
const (
	opGEMM = iota
	opClassRows
	opAttentionHeads
	opAttentionBackward
	opRolloutRows
	opTopRows
	opGELU
	opNormBackward
)

// splitPanels cuts a product's panels into at most want chunks of per
// panels each (the last one shorter): what the threads take one by one.
func splitPanels(panels, want int) (chunks, per int) {
	if panels == 0 {
		return 0, 1
	}
	want = max(1, min(want, panels))
	per = (panels + want - 1) / want
	return (panels + per - 1) / per, per
}

// putWords copies x into the module's memory at byte offset off.
func (k *simdKernel) putWords(off int, x []int32) {
	if len(x) > 0 {
		b := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(x))), 4*len(x))
		js.CopyBytesToJS(k.view.Call("subarray", off, off+len(b)), b)
	}
}

// putBytes and getBytes copy raw bytes into and out of the module's memory
// at byte offset off.
func (k *simdKernel) putBytes(off int, b []byte) {
	if len(b) > 0 {
		js.CopyBytesToJS(k.view.Call("subarray", off, off+len(b)), b)
	}
}

func (k *simdKernel) getBytes(b []byte, off int) {
	if len(b) > 0 {
		js.CopyBytesToGo(b, k.view.Call("subarray", off, off+len(b)))
	}
}

func flag(b bool) int {
	if b {
		return 1
	}
	return 0
}

// putRows copies the m×n matrix whose row i is x[i*ld : i*ld+n] into the
// module's memory at byte offset off as one contiguous block: x itself when
// ld == n, else gathered into pooled scratch first (attention's strided
// operands: a fresh copy per head was megabytes of garbage per forward).
func (k *simdKernel) putRows(off int, x []float32, ld, m, n int) {
	if ld == n || m == 0 {
		k.put(off, x[:m*n])
		return
	}
	rows := gatherRows(x, ld, m, n)
	k.put(off, *rows)
	scratch.Put(rows)
}

// microKernel is gemmKernel.run on the module: one 6×16 tile (a: kc×6
// packed as gemm.go packs A) as a 6×kc by kc×16 product, so that the
// micro-kernel tests see the module too.
func (k *simdKernel) microKernel(a, b, c *float32, kc, ldc int, accumulate bool) {
	as := unsafe.Slice(a, kc*gemmMR)
	rows := make([]float32, gemmMR*kc)
	for p := 0; p < kc; p++ {
		for r := 0; r < gemmMR; r++ {
			rows[r*kc+p] = as[p*gemmMR+r]
		}
	}
	pb := packedB{n: gemmNR, k: kc, data: unsafe.Slice(b, kc*gemmNR)}
	k.gemm(unsafe.Slice(c, (gemmMR-1)*ldc+gemmNR), ldc, rows, kc, gemmMR, &pb, epilogue{accumulate: accumulate})
}

// gemmWorkerURL is the helper threads' script, served with the app's
// other assets (public/web; the CSP allows workers from 'self' only).
const gemmWorkerURL = "/web/gemm-worker.js"

// newThreadedOrSingle returns the threaded kernel where the page can run
// it, else the single-threaded one. The threaded build needs shared memory
// (crossOriginIsolated: the server's COOP and COEP headers) and a thread
// without a document: it is over the 4 KiB the page's main thread may
// compile synchronously, and its caller blocks in Atomics.wait, which the
// main thread may not. Even at 1 thread it is the one to load there: its
// class-row and attention jobs save the engine's Go thread the lens's rows
// and attention's softmax, and the caller runs their chunks itself. Helper
// workers (threads-1 of them) need Worker too. VITLENS_THREADS (the page's
// ?threads=) caps the count; the default is navigator.hardwareConcurrency.
func newThreadedOrSingle() (*simdKernel, error) {
	g := js.Global()
	threads := 1
	if nav := g.Get("navigator"); nav.Truthy() && nav.Get("hardwareConcurrency").Truthy() {
		threads = max(1, nav.Get("hardwareConcurrency").Int())
	}
	if s := os.Getenv("VITLENS_THREADS"); s != "" {
		if n, err := strconv.Atoi(s); err == nil && n >= 1 {
			threads = min(threads, n)
		}
	}
	if g := os.Getenv("VITLENS_GEMM"); g != "" && g != "simd" {
		threads = 1 // another kernel chosen: no idle helpers
	}
	if !g.Get("crossOriginIsolated").Truthy() || g.Get("document").Truthy() {
		return newSIMDKernel()
	}
	if !g.Get("Worker").Truthy() {
		threads = 1
	}
	k, err := newThreadedKernel(threads)
	if err != nil {
		println("vitlens: the threaded WebAssembly SIMD kernel did not start, so products run in the single-threaded one:", err.Error())
		return newSIMDKernel()
	}
	return k, nil
}

// newThreadedKernel instantiates the threaded build on a new shared memory
// and starts threads-1 helper workers on it (none at 1 thread). The helpers
// need not have started for a product to run: the caller takes every chunk
// left.
func newThreadedKernel(threads int) (k *simdKernel, err error) {
	defer func() {
		if r := recover(); r != nil {
			k, err = nil, fmt.Errorf("%v", r)
		}
	}()
	g := js.Global()
	desc := g.Get("Object").New()
	desc.Set("initial", 16) // gemm_threads.wasm's --initial-memory
	desc.Set("maximum", 65536)
	desc.Set("shared", true)
	memory := g.Get("WebAssembly").Get("Memory").New(desc)
	if relaxedAllowed() {
		// Invalid where the engine has no relaxed SIMD: then simd128's.
		if k, err = instantiateKernel(simdThreadsFMAWasm, memory); err == nil {
			k.relaxed = true
		}
	}
	if k == nil {
		if k, err = instantiateKernel(simdThreadsWasm, memory); err != nil {
			return nil, err
		}
	}
	k.threaded, k.threads = true, threads
	if threads > 1 {
		k.split = productSplit
	}
	for tid := 1; tid < threads; tid++ {
		w := g.Get("Worker").New(gemmWorkerURL)
		msg := g.Get("Object").New()
		msg.Set("module", k.module)
		msg.Set("memory", memory)
		msg.Set("ctl", k.ctl.off)
		msg.Set("tid", tid)
		w.Call("postMessage", msg)
	}
	return k, nil
}
