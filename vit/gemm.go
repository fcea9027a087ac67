package vit

import (
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"
)

// This file is the CPU GEMM in the way of BLIS/GotoBLAS: the right-hand
// operand B is packed into column panels of gemmNR (weights once, per model;
// activations per call), the left-hand A into row panels of gemmMR per call,
// and an outer-product micro-kernel accumulates a gemmMR×gemmNR tile of C in
// registers. Blocking along k keeps one B micro-panel (kc×16 floats, 16 KiB)
// in L1 while it meets every A micro-panel of an mc×kc block held in L2.

const (
	gemmMR = 6  // rows of C per micro-kernel tile (tokens)
	gemmNR = 16 // columns of C per tile (output features): two ymm vectors
	// kc: a B micro-panel of 256×16 floats is 16 KiB, half of a 32 KiB L1d.
	gemmKC = 256
	// mc: an A block of 240×256 floats is 240 KiB, half of a 512 KiB L2.
	gemmMC = 240
)

// gemmKernel is one micro-kernel: C[0:MR, 0:NR] (=|+=) Σ_p A[p]⊗B[p] over kc
// steps of a packed A micro-panel (kc×MR) and B micro-panel (kc×NR), C with
// row stride ldc. The micro-kernel writes the whole tile; edges go through a
// scratch tile.
type gemmKernel struct {
	name string
	run  func(a, b, c *float32, kc, ldc int, accumulate bool)
	// prefetch, when not nil, asks for `lines` cache lines from p: the
	// GEMM brings the next B micro-panel in while the current one runs.
	prefetch func(p *float32, lines int)
	// whole, when set, replaces gemm's Go loops with a kernel that computes
	// the entire product in memory of its own: the WebAssembly SIMD module
	// of the browser build (gemm_js.go), which Go cannot call per tile.
	whole func(out []float32, ldc int, a []float32, lda, m int, b *packedB, ep epilogue)
	// unpacked, when set, computes a single product out[i*ldc+j] =
	// Σ_p a[i*lda+p]·B[p,j] from B as it lies (layoutB), packing it
	// itself: the module again, which then needs no packed copy from Go.
	unpacked func(out []float32, ldc int, a []float32, lda, m int, b layoutB)
}

// kernels lists the micro-kernels this build has, best last: the portable Go
// one (the assembly kernels' twin) and those the CPU supports.
var kernels = append([]gemmKernel{{name: "go", run: gemmGo}}, asmKernels()...)

// activeKernel is what MatMulT, LinearForward and Attention use. nil selects
// the scalar 2×4 loop (matMulTRange), the default where no assembly kernel
// runs (other CPUs, WebAssembly, -tags purego): the Go micro-kernel is a
// correctness twin, slower than that loop. VITLENS_GEMM=scalar|go|avx2
// (|neon on arm64) forces one, so the whole test suite can run on every path of a machine.
var activeKernel = pickKernel(os.Getenv("VITLENS_GEMM"))

func pickKernel(name string) *gemmKernel {
	if name == "scalar" {
		return nil
	}
	for i := range kernels {
		if kernels[i].name == name {
			return &kernels[i]
		}
	}
	if len(kernels) > 1 {
		return &kernels[len(kernels)-1]
	}
	return nil
}

// GEMMThreads is how many threads the browser build's matmul uses (the
// engine's worker and its helper workers, vit/gemm_js.go); 1 elsewhere,
// where GOMAXPROCS counts the products' goroutines.
func GEMMThreads() int { return wholeThreads() }

var wholeThreads = func() int { return 1 }

// GEMMKernel names the matmul path in use: "scalar", "go" or an assembly
// kernel such as "avx2" or "neon".
func GEMMKernel() string {
	if activeKernel == nil {
		return "scalar"
	}
	return activeKernel.name
}

// relaxedSIMD is set by the browser build when its module is a
// relaxed-SIMD one (gemm_js.go).
var relaxedSIMD bool

// RelaxedSIMD reports whether products run in the browser build's
// relaxed-SIMD module, whose micro-kernel multiplies and adds in one
// instruction (fused multiply-add where the CPU has it): its results may
// differ in the last bits from the simd128 module's and between machines.
func RelaxedSIMD() bool { return relaxedSIMD && GEMMKernel() == "simd" }

// gemmGo is the portable micro-kernel, the twin the assembly ones are
// tested against.
func gemmGo(a, b, c *float32, kc, ldc int, accumulate bool) {
	as := unsafe.Slice(a, kc*gemmMR)
	bs := unsafe.Slice(b, kc*gemmNR)
	var t [gemmMR][gemmNR]float32
	for p := 0; p < kc; p++ {
		bp := (*[gemmNR]float32)(bs[p*gemmNR:])
		for r, x := range as[p*gemmMR : p*gemmMR+gemmMR] {
			for j, y := range bp {
				t[r][j] += x * y
			}
		}
	}
	cs := unsafe.Slice(c, (gemmMR-1)*ldc+gemmNR)
	for r := range t {
		row := cs[r*ldc : r*ldc+gemmNR]
		if accumulate {
			for j := range row {
				row[j] += t[r][j]
			}
		} else {
			copy(row, t[r][:])
		}
	}
}

// packedB is a k×n right-hand operand in column panels: panel q holds, for
// p = 0..k-1, the gemmNR values B[p, q·NR : q·NR+NR], zero past column n.
type packedB struct {
	n, k int
	data []float32
	// kept marks weights packed once (PackT) and never repacked, which a
	// whole-product kernel may copy once into its own memory.
	kept bool
}

func (b *packedB) panels() int { return (b.n + gemmNR - 1) / gemmNR }

// reset sizes b for a k×n operand, reusing its buffer when large enough.
func (b *packedB) reset(k, n int) {
	b.n, b.k = n, k
	size := b.panels() * k * gemmNR
	if cap(b.data) < size {
		b.data = make([]float32, size)
	}
	b.data = b.data[:size]
}

// packBT packs B = Wᵀ from w, whose row j (at w[j*ldw:]) is B's column j:
// the PyTorch Linear layout (W is n×k), and attention's keys.
func (b *packedB) packBT(w []float32, ldw, n, k int) {
	b.reset(k, n)
	for q := 0; q < b.panels(); q++ {
		dst := b.data[q*k*gemmNR : (q+1)*k*gemmNR]
		cols := min(gemmNR, n-q*gemmNR)
		for c := 0; c < cols; c++ {
			row := w[(q*gemmNR+c)*ldw:][:k]
			for p, v := range row {
				dst[p*gemmNR+c] = v
			}
		}
		if cols < gemmNR {
			for p := 0; p < k; p++ {
				clear(dst[p*gemmNR+cols : (p+1)*gemmNR])
			}
		}
	}
}

// at is B[p, j], read from the panels: the one place besides the packing
// functions that knows the layout, for readers of packed weights.
func (b *packedB) at(p, j int) float32 {
	return b.data[((j/gemmNR)*b.k+p)*gemmNR+j%gemmNR]
}

// unpackBT is packBT's inverse: it writes Bᵀ back into w (n×k, row j at
// w[j*ldw:]), exactly.
func (b *packedB) unpackBT(w []float32, ldw int) {
	for q := 0; q < b.panels(); q++ {
		src := b.data[q*b.k*gemmNR : (q+1)*b.k*gemmNR]
		for c := 0; c < min(gemmNR, b.n-q*gemmNR); c++ {
			row := w[(q*gemmNR+c)*ldw:][:b.k]
			for p := range row {
				row[p] = src[p*gemmNR+c]
			}
		}
	}
}

// packBN packs B from v, whose row p (at v[p*ldv:]) is B's row p: attention's
// values.
func (b *packedB) packBN(v []float32, ldv, k, n int) {
	b.reset(k, n)
	for q := 0; q < b.panels(); q++ {
		dst := b.data[q*k*gemmNR : (q+1)*k*gemmNR]
		j0 := q * gemmNR
		cols := min(gemmNR, n-j0)
		for p := 0; p < k; p++ {
			d := dst[p*gemmNR : (p+1)*gemmNR]
			copy(d, v[p*ldv+j0:p*ldv+j0+cols])
			clear(d[cols:])
		}
	}
}

// packTransposed packs B = W (src.n×src.k, row-major W being the PyTorch
// Linear layout) from src, the panels of Wᵀ that PackT keeps: the operand
// of x·W, a backward pass's product, made from a model's packed weights
// without unpacking them first. Both layouts store 16×16 blocks of W as 256
// contiguous floats (src's panel P rows j0..j0+15 are W[16P.., j0..]; b's
// panel q rows p0..p0+15 are W[p0.., 16q..]), so it is one block transpose
// per block: the same values packBN of row-major W writes.
func (b *packedB) packTransposed(src *packedB) {
	k, n := src.n, src.k // B = W is Out×In: k = Out rows, n = In columns
	b.reset(k, n)
	for q := 0; q < b.panels(); q++ {
		j0 := q * gemmNR
		cols := min(gemmNR, n-j0)
		dst := b.data[q*k*gemmNR : (q+1)*k*gemmNR]
		for p0 := 0; p0 < k; p0 += gemmNR {
			rows := min(gemmNR, k-p0)
			blk := src.data[((p0/gemmNR)*src.k+j0)*gemmNR:][:cols*gemmNR]
			out := dst[p0*gemmNR:][:rows*gemmNR]
			if rows == gemmNR && cols == gemmNR {
				transpose16((*[gemmNR * gemmNR]float32)(out), (*[gemmNR * gemmNR]float32)(blk))
				continue
			}
			for c := 0; c < cols; c++ {
				in := blk[c*gemmNR : c*gemmNR+gemmNR]
				for r := range rows {
					out[r*gemmNR+c] = in[r]
				}
			}
			if cols < gemmNR {
				for r := range rows {
					clear(out[r*gemmNR+cols : (r+1)*gemmNR])
				}
			}
		}
	}
}

// transpose16 writes the transpose of the 16×16 block in into out, a row
// of out at a time from constant offsets: no bounds checks in the loop,
// which Go's wasm port would otherwise pay on every element.
func transpose16(out, in *[gemmNR * gemmNR]float32) {
	for r := range gemmNR {
		o := (*[gemmNR]float32)(out[r*gemmNR:])
		o[0], o[1], o[2], o[3] = in[r], in[16+r], in[32+r], in[48+r]
		o[4], o[5], o[6], o[7] = in[64+r], in[80+r], in[96+r], in[112+r]
		o[8], o[9], o[10], o[11] = in[128+r], in[144+r], in[160+r], in[176+r]
		o[12], o[13], o[14], o[15] = in[192+r], in[208+r], in[224+r], in[240+r]
	}
}

// layoutB is the right operand B (k×n) of a single product as it lies in
// memory, unpacked: B[p, j] = data[(p/16)·block + (p%16)·row + j·col],
// with row or col 1.
// The three forms the products take (rowsB, columnsB, weightsB) differ in
// these strides only, so a kernel that packs B itself (gemmKernel.unpacked:
// the browser's module, panel by panel as it reaches them) needs one loop
// for all of them; Go's loops pack B first with the packer of its form.
type layoutB struct {
	k, n            int
	data            []float32
	block, row, col int
	panels          *packedB // the packed weights data belongs to (weightsB), else nil
}

// rowsB is b (k×n, row p at b[p*ld:]) as B: MatMul's operand, attention's
// values.
func rowsB(b []float32, ld, k, n int) layoutB {
	return layoutB{k: k, n: n, data: b, block: gemmNR * ld, row: ld, col: 1}
}

// columnsB is bᵀ as B for b n×k (row j at b[j*ld:], B's column j): MatMulT's
// operand, attention's keys.
func columnsB(b []float32, ld, n, k int) layoutB {
	return layoutB{k: k, n: n, data: b, block: gemmNR, row: 1, col: ld}
}

// weightsB is W as B, read from src, the panels of Wᵀ that PackT keeps
// (W is src.n×src.k): Linear.MatMul's operand. Both layouts store 16×16
// blocks of W as 256 contiguous floats (packTransposed), so W[p, j] is in
// src's panel p/16, row j, column p%16.
func weightsB(src *packedB) layoutB {
	return layoutB{k: src.n, n: src.k, data: src.data, block: gemmNR * src.k, row: 1, col: gemmNR, panels: src}
}

// at is B[p, j]: the layout's definition, which the tests hold every
// packer to.
func (l layoutB) at(p, j int) float32 {
	return l.data[(p/gemmNR)*l.block+(p%gemmNR)*l.row+j*l.col]
}

// pack writes B into b's panels with the packer of its form.
func (l layoutB) pack(b *packedB) {
	switch {
	case l.panels != nil:
		b.packTransposed(l.panels)
	case l.col == 1:
		b.packBN(l.data, l.row, l.k, l.n)
	default:
		b.packBT(l.data, l.col, l.n, l.k)
	}
}

// kBlock is the k-slice length for a product over k: at most gemmKC, the
// slices as equal as possible.
func kBlock(k int) int {
	blocks := max(1, (k+gemmKC-1)/gemmKC)
	return (k + blocks - 1) / blocks
}

// packA packs the m×k matrix a (row i at a[i*lda:]) into row panels of
// gemmMR for each k-slice [p0, p0+kc) of kBlock(k): slice by slice, so the
// A block one slice uses is contiguous; within it panel r holds, for
// p = p0..p0+kc-1, a[r·MR .. r·MR+MR, p] (zero past m). It packs the row
// panels [r0, r1) only, so that workers can share the packing.
func packA(dst, a []float32, lda, m, k, r0, r1 int) {
	kc0 := kBlock(k)
	rowsPadded := (m + gemmMR - 1) / gemmMR * gemmMR
	for p0 := 0; p0 < k; p0 += kc0 {
		kc := min(kc0, k-p0)
		for i0 := r0 * gemmMR; i0 < min(m, r1*gemmMR); i0 += gemmMR {
			panel := dst[p0*rowsPadded+(i0/gemmMR)*kc*gemmMR:][:kc*gemmMR]
			rows := min(gemmMR, m-i0)
			if rows == gemmMR {
				packA6(panel, a[i0*lda+p0:], lda, kc)
				continue
			}
			for r := 0; r < rows; r++ {
				for p, v := range a[(i0+r)*lda+p0:][:kc] {
					panel[p*gemmMR+r] = v
				}
			}
			for r := rows; r < gemmMR; r++ {
				for p := 0; p < kc; p++ {
					panel[p*gemmMR+r] = 0
				}
			}
		}
	}
}

// packA6 packs one full row panel: the six rows of a (row stride lda),
// kc values each, interleaved into dst. It reads the six rows side by side
// and writes dst in order, one pass and no bounds checks in the loop, where
// writing each row with a stride of six cost 5% of a B/16 forward.
func packA6(dst, a []float32, lda, kc int) {
	r0 := a[:kc]
	r1, r2, r3 := a[lda:][:len(r0)], a[2*lda:][:len(r0)], a[3*lda:][:len(r0)]
	r4, r5 := a[4*lda:][:len(r0)], a[5*lda:][:len(r0)]
	dst = dst[:len(r0)*gemmMR]
	for p, v := range r0 {
		d := dst[p*gemmMR : p*gemmMR+gemmMR : p*gemmMR+gemmMR]
		d[0], d[1], d[2], d[3], d[4], d[5] = v, r1[p], r2[p], r3[p], r4[p], r5[p]
	}
}

func packedASize(m, k int) int { return (m + gemmMR - 1) / gemmMR * k * gemmMR }

// epilogue is what the GEMM does with a tile besides the product: add it to
// what out already holds (a residual stream), and once finished, while it
// is in L1, add a bias per column, then GELU.
type epilogue struct {
	accumulate bool
	bias       []float32
	gelu       bool
}

func (e epilogue) apply(out []float32, ldc, i0, rows, j0, cols int) {
	if e.bias == nil && !e.gelu {
		return
	}
	if cols == gemmNR {
		var bias []float32
		if e.bias != nil {
			bias = e.bias[j0 : j0+gemmNR]
		}
		if epilogueVector(out[i0*ldc+j0:], ldc, rows, bias, e.gelu) {
			return
		}
	}
	for i := i0; i < i0+rows; i++ {
		row := out[i*ldc+j0 : i*ldc+j0+cols]
		if e.bias != nil {
			Add(row, e.bias[j0:j0+cols])
		}
		if e.gelu {
			GELU(row)
		}
	}
}

// scratch recycles the per-call packing buffers (packed A is up to a few MiB).
var scratch = sync.Pool{New: func() any { return new([]float32) }}

func getScratch(n int) *[]float32 {
	s := scratch.Get().(*[]float32)
	if cap(*s) < n {
		*s = make([]float32, n)
	}
	*s = (*s)[:n]
	return s
}

// packedBPool recycles single products' packed right-hand operands (a
// transposed weight matrix is megabytes: one per product was most of a
// backward pass's garbage).
var packedBPool = sync.Pool{New: func() any { return new(packedB) }}

// productOnce computes out (m×b.n, row-major) = a (m×b.k, row-major)·B for
// the single products (MatMulT, MatMul, Linear.MatMul), which differ only
// in B's layout: a kernel that packs B itself takes it as it lies; for the
// others it is packed into a pooled packedB for this product only.
func productOnce(out, a []float32, m int, b layoutB) {
	pb := packedBPool.Get().(*packedB)
	defer packedBPool.Put(pb)
	productOf(out, b.n, a, b.k, m, b, pb, gemmWorkers())
}

// productOf computes out[i*ldc+j] = Σ_p a[i*lda+p]·B[p,j] on up to workers
// goroutines, packing B into pb unless the kernel packs it itself.
func productOf(out []float32, ldc int, a []float32, lda, m int, b layoutB, pb *packedB, workers int) {
	if m == 0 || b.n == 0 {
		return
	}
	if activeKernel.unpacked != nil {
		activeKernel.unpacked(out, ldc, a, lda, m, b)
		return
	}
	b.pack(pb)
	gemm(activeKernel, out, ldc, a, lda, m, pb, epilogue{}, workers)
}

// gemm computes out[i*ldc+j] = ep(Σ_p a[i*lda+p]·B[p,j]) for i < m, j < b.n
// with micro-kernel kern, splitting column panels across up to `workers`
// goroutines (fewer when the product is small).
func gemm(kern *gemmKernel, out []float32, ldc int, a []float32, lda, m int, b *packedB, ep epilogue, workers int) {
	if m == 0 || b.n == 0 {
		return
	}
	if kern.whole != nil {
		kern.whole(out, ldc, a, lda, m, b, ep)
		return
	}
	ap := getScratch(packedASize(m, b.k))
	defer scratch.Put(ap)
	panels := b.panels()
	workers = min(workers, panels, max(1, m*b.n*b.k/parallelMinWork))
	if workers <= 1 {
		packA(*ap, a, lda, m, b.k, 0, (m+gemmMR-1)/gemmMR)
		gemmPanels(kern, out, ldc, *ap, m, b, ep, 0, panels)
		return
	}
	// Each worker packs its share of A's row panels, waits for the others,
	// then takes chunks of B's column panels from a shared counter, so a
	// core slowed by other load takes fewer; about four chunks per worker.
	rowPanels := (m + gemmMR - 1) / gemmMR
	chunk := max(1, panels/(4*workers))
	var packed, done sync.WaitGroup
	var next atomic.Int64
	packed.Add(workers)
	work := func(w int) {
		packA(*ap, a, lda, m, b.k, w*rowPanels/workers, (w+1)*rowPanels/workers)
		packed.Done()
		packed.Wait()
		for {
			q1 := int(next.Add(int64(chunk)))
			q0 := q1 - chunk
			if q0 >= panels {
				return
			}
			gemmPanels(kern, out, ldc, *ap, m, b, ep, q0, min(q1, panels))
		}
	}
	for w := 1; w < workers; w++ {
		done.Add(1)
		go func() { defer done.Done(); work(w) }()
	}
	work(0)
	done.Wait()
}

// gemmPanels computes the output columns of B panels [q0, q1): for each
// mc-row block and kc-slice of k, each B micro-panel (in L1) meets every A
// micro-panel of the block (in L2).
func gemmPanels(kern *gemmKernel, out []float32, ldc int, ap []float32, m int, b *packedB, ep epilogue, q0, q1 int) {
	k, n := b.k, b.n
	kc0 := kBlock(k)
	rowsPadded := (m + gemmMR - 1) / gemmMR * gemmMR
	mBlocks := (m + gemmMC - 1) / gemmMC
	mc := ((m+mBlocks-1)/mBlocks + gemmMR - 1) / gemmMR * gemmMR
	// With k = 0 the kernel reads nothing (kc = 0) and just writes zeros.
	var none float32
	at := func(s []float32, off int) *float32 {
		if k == 0 {
			return &none
		}
		return &s[off]
	}
	// The scratch tile of the edge tiles (fewer than MR rows or NR columns):
	// one per call, since it escapes through kern.run (one per tile was
	// 28,000 allocations per B/16 forward).
	tile := new([gemmMR * gemmNR]float32)
	for i0 := 0; i0 < m; i0 += mc {
		i1 := min(m, i0+mc)
		rowPanels := (i1 - i0 + gemmMR - 1) / gemmMR
		for p0 := 0; ; p0 += kc0 {
			kc := min(kc0, k-p0)
			acc, last := p0 > 0 || ep.accumulate, p0+kc >= k
			// A B micro-panel is kc cache lines; each tile of a strip
			// prefetches its share of the next strip's, which would
			// otherwise come from memory (the weights are megabytes) on
			// that strip's first tiles: 5-10% of the large products.
			lines := (kc + rowPanels - 1) / rowPanels
			for q := q0; q < q1; q++ {
				bp := at(b.data, (q*k+p0)*gemmNR)
				j0 := q * gemmNR
				cols := min(gemmNR, n-j0)
				var next []float32
				if kern.prefetch != nil && q+1 < q1 && kc > 0 {
					next = b.data[((q+1)*k+p0)*gemmNR:][:kc*gemmNR]
				}
				for i := i0; i < i1; i += gemmMR {
					if from := (i - i0) / gemmMR * lines; next != nil && from < kc {
						kern.prefetch(&next[from*gemmNR], min(lines, kc-from))
					}
					apan := at(ap, p0*rowsPadded+(i/gemmMR)*kc*gemmMR)
					rows := min(gemmMR, m-i)
					if rows == gemmMR && cols == gemmNR {
						kern.run(apan, bp, &out[i*ldc+j0], kc, ldc, acc)
					} else {
						if acc {
							for r := 0; r < rows; r++ {
								copyTileRow(tile[r*gemmNR:], out[(i+r)*ldc+j0:][:cols])
							}
						}
						kern.run(apan, bp, &tile[0], kc, gemmNR, acc)
						for r := 0; r < rows; r++ {
							copyTileRow(out[(i+r)*ldc+j0:], tile[r*gemmNR:][:cols])
						}
					}
					if last {
						ep.apply(out, ldc, i, rows, j0, cols)
					}
				}
			}
			if last {
				break
			}
		}
	}
}

// copyTileRow copies src into dst (at most gemmNR floats) in an inline loop:
// copy's memmove call cost more than the copying on these short rows.
func copyTileRow(dst, src []float32) {
	dst = dst[:len(src)]
	for j, v := range src {
		dst[j] = v
	}
}

// gemmWorkers is how many goroutines one product may use.
func gemmWorkers() int { return runtime.GOMAXPROCS(0) }
