//go:build js && !purego

package vit

import (
	_ "embed"
	"errors"
	"fmt"
	"runtime"
	"slices"
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

const wasmPage = 1 << 16

// simd is the instantiated module, nil where this JavaScript engine has no
// WebAssembly SIMD; simdErr says why.
var simd, simdErr = newSIMDKernel()

func fmaPeak(iters int) float64 { return 0 }

func asmKernels() []gemmKernel {
	if simd == nil {
		return nil
	}
	return []gemmKernel{{name: "simd", run: simd.microKernel, whole: simd.gemm}}
}

// simdKernel is one instance of the module and the allocator of its memory:
// the kept weights, each in a span of its own, and one scratch span reused
// by every call.
type simdKernel struct {
	mu          sync.Mutex
	gemmFn      js.Value
	packedASize js.Value
	memory      js.Value
	view        js.Value // Uint8Array over memory.buffer; a grow detaches it
	size, top   int      // bytes of memory; end of the highest span in use
	free        []span   // spans below top not in use, by offset
	kept        map[weak.Pointer[packedB]]span
	scratch     span
}

// span is a range of the module's memory, in bytes.
type span struct{ off, size int }

func newSIMDKernel() (k *simdKernel, err error) {
	defer func() {
		if r := recover(); r != nil { // a js.Error from a throwing call
			k, err = nil, fmt.Errorf("WebAssembly SIMD kernel: %v", r)
		}
	}()
	wasm := js.Global().Get("WebAssembly")
	if wasm.IsUndefined() {
		return nil, errors.New("WebAssembly SIMD kernel: no WebAssembly object")
	}
	code := js.Global().Get("Uint8Array").New(len(simdWasm))
	js.CopyBytesToJS(code, simdWasm)
	// The module itself is the feature check: it uses simd128 throughout,
	// so an engine without SIMD finds it invalid.
	if !wasm.Call("validate", code).Bool() {
		return nil, errors.New("WebAssembly SIMD kernel: this engine has no WebAssembly SIMD (simd128)")
	}
	// Compiled synchronously: Chromium allows that on the main thread for
	// modules up to 4 KiB, which wasmkernel_test.go holds this one to.
	mod := wasm.Get("Module").New(code)
	exports := wasm.Get("Instance").New(mod, js.Global().Get("Object").New()).Get("exports")
	k = &simdKernel{
		gemmFn:      exports.Get("gemm"),
		packedASize: exports.Get("packedASize"),
		memory:      exports.Get("memory"),
		kept:        map[weak.Pointer[packedB]]span{},
	}
	// Below __heap_base lie the module's stack and data.
	k.top = (exports.Get("__heap_base").Get("value").Int() + 63) &^ 63
	k.remap()
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
	k.mu.Lock()
	defer k.mu.Unlock()
	n, kk := b.n, b.k
	w, kept, err := k.weights(b)
	if err != nil {
		panic(err)
	}
	// One scratch span: A (m×k), C (m×n), the bias, the packed A of one
	// k-slice, and B itself when it is not kept (attention's operands).
	aOff := 0
	cOff := aOff + 4*m*kk
	biasOff := cOff + 4*m*n
	apOff := biasOff + 4*n
	bOff := apOff + 4*k.packedASize.Invoke(m).Int()
	need := bOff
	if !kept {
		need += 4 * len(b.data)
	}
	if k.scratch.size < need {
		k.release(k.scratch)
		k.scratch = span{}
		if k.scratch, err = k.alloc(need); err != nil {
			panic(err)
		}
	}
	base := k.scratch.off
	if kept {
		bOff = w.off
	} else {
		bOff += base
		k.put(bOff, b.data)
	}
	k.put(base+aOff, rowsOf(a, lda, m, kk))
	if ep.accumulate {
		k.put(base+cOff, rowsOf(out, ldc, m, n))
	}
	bias := 0
	if ep.bias != nil {
		bias = base + biasOff
		k.put(bias, ep.bias[:n])
	}
	k.gemmFn.Invoke(base+cOff, base+aOff, bOff, base+apOff, m, n, kk, flag(ep.accumulate), bias, flag(ep.gelu))
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

func flag(b bool) int {
	if b {
		return 1
	}
	return 0
}

// rowsOf returns the m×n matrix whose row i is x[i*ld : i*ld+n] as one
// contiguous slice: x itself when ld == n, else a gathered copy.
func rowsOf(x []float32, ld, m, n int) []float32 {
	if ld == n || m == 0 {
		return x[:m*n]
	}
	out := make([]float32, m*n)
	for i := 0; i < m; i++ {
		copy(out[i*n:(i+1)*n], x[i*ld:])
	}
	return out
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
