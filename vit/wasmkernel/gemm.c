// The matrix product of vitlens' browser build in WebAssembly SIMD (simd128).
//
// Go's wasm port emits no SIMD instructions, so the packed GEMM of package
// vit (vit/gemm.go) runs here instead, in a separate module that Go
// instantiates through syscall/js (vit/gemm_js.go) and that owns its memory:
// Go copies the packed weights in once, A in and C out per product. The
// layout of B is the one vit/gemm.go packs: panel q of 16 columns holds,
// for p = 0..k-1, the 16 values B[p, 16q .. 16q+15], zero past column n.
//
// Built by `make wasm-kernel` with Debian's clang and lld (see the Makefile);
// the built gemm.wasm is committed beside this file and embedded, so no
// build of vitlens needs clang.
#include <wasm_simd128.h>

#define NR 16  // columns of a packed B panel (vit/gemm.go's gemmNR)
#define KC 256 // k-slice: a 256×16 B micro-panel is 16 KiB, in L1

// V8 gives wasm code the 16 xmm registers of x86-64 (one held back). In
// simd128, multiply and add are separate instructions: a tile of MR = 4
// rows × 8 columns needs 8 accumulators, 2 B vectors, a broadcast A and a
// product temporary, 12 in all; 6 rows would need 16 and spill. The
// relaxed-SIMD builds (gemm_fma.wasm, gemm_threads_fma.wasm: -mrelaxed-simd)
// multiply and add in one f32x4.relaxed_madd, which V8 compiles to one
// vfmadd (vfmadd213ps in Node 20) where the CPU has FMA3: ViT-B/16's
// forward 10-14% faster in Chromium 156, 18% in Node 20. Their tile stays
// at 4 rows: 5 (10 accumulators) was faster still in Node 20 but 20% slower
// than simd128 in Chromium 156, whose V8 spilled it. relaxed_madd rounds
// once (fused) or twice (a multiply, then an add), as the machine has it:
// a product's last bits may differ between machines and from the simd128
// build, each within the tests' tolerance of the float64 reference.
#define MR 4
#define ROWS(X) X(0) X(1) X(2) X(3)
#ifdef __wasm_relaxed_simd__
#define MADD(x, b, c) __builtin_wasm_relaxed_madd_f32x4(x, b, c)
#else
#define MADD(x, b, c) wasm_f32x4_add(c, wasm_f32x4_mul(x, b))
#endif

// tile computes C[0:MR, 0:8] (=|+=) Σ_p A[p, 0:MR] ⊗ B[p, 0:8] for a packed
// A slice (kc×MR) and 8 columns of a B micro-panel (row stride NR). Row r's
// accumulators are c<r>0 (columns 0-3) and c<r>1 (4-7), one ROWS(X) line
// per step.
__attribute__((noinline)) static void tile(const float *restrict a, const float *restrict b, float *restrict c, int kc, int ldc,
                                           int accumulate) {
#define DECLARE(r) v128_t c##r##0 = wasm_f32x4_splat(0), c##r##1 = c##r##0;
#define STEP(r)                                                                                                   \
	x = wasm_v128_load32_splat(a + r);                                                                            \
	c##r##0 = MADD(x, b0, c##r##0);                                                                               \
	c##r##1 = MADD(x, b1, c##r##1);
#define ADD_C(r)                                                                                                  \
	c##r##0 = wasm_f32x4_add(c##r##0, wasm_v128_load(c + r * ldc));                                               \
	c##r##1 = wasm_f32x4_add(c##r##1, wasm_v128_load(c + r * ldc + 4));
#define STORE(r)                                                                                                  \
	wasm_v128_store(c + r * ldc, c##r##0);                                                                        \
	wasm_v128_store(c + r * ldc + 4, c##r##1);
	ROWS(DECLARE)
	for (int p = 0; p < kc; p++) {
		v128_t b0 = wasm_v128_load(b), b1 = wasm_v128_load(b + 4), x;
		ROWS(STEP)
		a += MR;
		b += NR;
	}
	if (accumulate) {
		ROWS(ADD_C)
	}
	ROWS(STORE)
#undef DECLARE
#undef STEP
#undef ADD_C
#undef STORE
}

// packA copies rows [i0, min(i1, m)) (i0 a multiple of MR) and columns
// [p0, p0+kc) of the m×k matrix a into row panels of MR: panel r holds, for
// p = 0..kc-1, the MR values a[r·MR .. r·MR+MR-1, p0+p]. Rows past m repeat
// row m-1 (their results are dropped; one path is smaller than a separate
// zero fill).
static void packA(float *restrict dst, const float *restrict a, int m, int k, int p0, int kc, int i0, int i1) {
	for (; i0 < m && i0 < i1; i0 += MR) {
		float *panel = dst + (i0 / MR) * kc * MR;
		for (int r = 0; r < MR; r++) {
			const float *row = a + (i0 + r < m ? i0 + r : m - 1) * k + p0;
			for (int p = 0; p < kc; p++) panel[p * MR + r] = row[p];
		}
	}
}

// packB copies columns [j0, j0+NR) of rows [p0, p0+kc) of an unpacked B
// (k×n) into one micro-panel (kc×NR, the packed layout), B[p, j] being
// b[(p/16)·block + (p%16)·row + j·col], four rows by four columns at a
// time: with a unit row stride (Bᵀ row-major, MatMulT's operand, and the
// 16×16 blocks of the kept panels of Wᵀ read as W) four rows of b, each
// four consecutive p of one column (past n: column n-1), are transposed in
// registers; otherwise (row-major B: unit column stride) four rows of B are
// copied. p0 is a multiple of 4, so no group of four crosses a 16-block;
// rows past k are packed too (up to 3, never read by the kernel), for which
// the caller leaves room in b (vit/gemm_js.go).
static void packB(float *restrict dst, const float *restrict b, int n, int p0, int kc, int j0, int block, int row,
                  int col) {
	// Four named vectors, not an array: an array may live in the linear
	// memory's stack, which every thread's instance places at one address.
#define COLUMN(r) wasm_v128_load(src + (j0 + c + r < n ? j0 + c + r : n - 1) * col)
	for (int p = p0; p < p0 + kc; p += 4, dst += 4 * NR) {
		const float *src = b + (p >> 4) * block + (p & 15) * row;
		for (int c = 0; c < NR; c += 4) {
			v128_t x0, x1, x2, x3;
			if (row == 1) {
				v128_t y0 = COLUMN(0), y1 = COLUMN(1), y2 = COLUMN(2), y3 = COLUMN(3);
				v128_t t0 = wasm_i32x4_shuffle(y0, y1, 0, 4, 1, 5), t1 = wasm_i32x4_shuffle(y0, y1, 2, 6, 3, 7);
				v128_t t2 = wasm_i32x4_shuffle(y2, y3, 0, 4, 1, 5), t3 = wasm_i32x4_shuffle(y2, y3, 2, 6, 3, 7);
				x0 = wasm_i32x4_shuffle(t0, t2, 0, 1, 4, 5);
				x1 = wasm_i32x4_shuffle(t0, t2, 2, 3, 6, 7);
				x2 = wasm_i32x4_shuffle(t1, t3, 0, 1, 4, 5);
				x3 = wasm_i32x4_shuffle(t1, t3, 2, 3, 6, 7);
			} else {
				x0 = wasm_v128_load(src + j0 + c);
				x1 = wasm_v128_load(src + row + j0 + c);
				x2 = wasm_v128_load(src + 2 * row + j0 + c);
				x3 = wasm_v128_load(src + 3 * row + j0 + c);
			}
			wasm_v128_store(dst + c, x0);
			wasm_v128_store(dst + NR + c, x1);
			wasm_v128_store(dst + 2 * NR + c, x2);
			wasm_v128_store(dst + 3 * NR + c, x3);
		}
	}
#undef COLUMN
}

// WORK is the length in floats of a thread's working space in a product:
// the tile for the edges (tiles that cross row m or column n go through it)
// and packB's micro-panel of an unpacked B.
#define WORK (MR * NR + KC * NR)

// packedASize is the length in floats of the scratch for an m×k A that
// gemmPanels packs itself (attention's jobs): all of A packed, k-slice
// after k-slice, then WORK. A is packed once per product: packing (scalar,
// strided) costs about as much as one panel's products, so a product cut
// into many chunks would otherwise pack A many times over.
__attribute__((export_name("packedASize"))) int packedASize(int m, int k) {
	return (m + MR - 1) / MR * MR * k + WORK;
}

// sliceK is the k-slice of a product of depth k: k cut into equal slices of
// at most KC, multiples of 4 (packB).
static int sliceK(int k) {
	int slices = k > 0 ? (k + KC - 1) / KC : 1;
	return ((k + slices - 1) / slices + 3) & ~3;
}

// erf4 is vit.Erf32 (vit/ops.go) on four lanes: the same float32
// operations in the same order (simd128 has no fused
// multiply-add, and clang contracts nothing into one), so they round
// exactly as Go does: the rational minimax approximation of XLA and Eigen.
__attribute__((noinline)) static v128_t erf4(v128_t x) {
	x = wasm_f32x4_max(wasm_f32x4_splat(-4), wasm_f32x4_min(wasm_f32x4_splat(4), x));
	v128_t x2 = wasm_f32x4_mul(x, x);
	v128_t p = wasm_f32x4_splat(-2.72614225801306e-10f);
	p = wasm_f32x4_add(wasm_f32x4_mul(p, x2), wasm_f32x4_splat(2.77068142495902e-08f));
	p = wasm_f32x4_add(wasm_f32x4_mul(p, x2), wasm_f32x4_splat(-2.10102402082508e-06f));
	p = wasm_f32x4_add(wasm_f32x4_mul(p, x2), wasm_f32x4_splat(-5.69250639462346e-05f));
	p = wasm_f32x4_add(wasm_f32x4_mul(p, x2), wasm_f32x4_splat(-7.34990630326855e-04f));
	p = wasm_f32x4_add(wasm_f32x4_mul(p, x2), wasm_f32x4_splat(-2.95459980854025e-03f));
	p = wasm_f32x4_add(wasm_f32x4_mul(p, x2), wasm_f32x4_splat(-1.60960333262415e-02f));
	v128_t q = wasm_f32x4_splat(-1.45660718464996e-05f);
	q = wasm_f32x4_add(wasm_f32x4_mul(q, x2), wasm_f32x4_splat(-2.13374055278905e-04f));
	q = wasm_f32x4_add(wasm_f32x4_mul(q, x2), wasm_f32x4_splat(-1.68282697438203e-03f));
	q = wasm_f32x4_add(wasm_f32x4_mul(q, x2), wasm_f32x4_splat(-7.37332916720468e-03f));
	q = wasm_f32x4_add(wasm_f32x4_mul(q, x2), wasm_f32x4_splat(-1.42647390514189e-02f));
	return wasm_f32x4_div(wasm_f32x4_mul(x, p), q);
}

// gelu applies vit.GELU, 0.5·v·(1 + erf(v/√2)), to the n floats at x: the
// GEMM's epilogue, and exported for the activations Go applies after the
// product (the forward's when its pre-activations are tapped).
__attribute__((export_name("gelu"))) void gelu(float *x, int n) {
	const v128_t half = wasm_f32x4_splat(0.5f), one = wasm_f32x4_splat(1), s = wasm_f32x4_splat(0.70710678118654752440f);
	int i = 0;
	for (; i + 4 <= n; i += 4) {
		v128_t v = wasm_v128_load(x + i);
		wasm_v128_store(x + i, wasm_f32x4_mul(wasm_f32x4_mul(half, v), wasm_f32x4_add(one, erf4(wasm_f32x4_mul(v, s)))));
	}
	for (; i < n; i++) { // the tail through one lane of the same code
		v128_t v = wasm_f32x4_splat(x[i]);
		v = wasm_f32x4_mul(wasm_f32x4_mul(half, v), wasm_f32x4_add(one, erf4(wasm_f32x4_mul(v, s))));
		x[i] = wasm_f32x4_extract_lane(v, 0);
	}
}

// exp4 is e^v on four lanes for v in [-87.33654, 88] (garbage elsewhere), by vit.Exp32's method
// (expShiftGo, vit/ops.go) in the same float32 operations and order, so it
// rounds as Go does. Go takes n = ⌊v·log2e + ½⌋ in float64; here
// n = ⌊t⌋ + (t − ⌊t⌋ ≥ ½), the same integer: t − ⌊t⌋ is exact or rounds
// monotonically, and ½ is a float32.
static v128_t exp4(v128_t v) {
	v128_t t = wasm_f32x4_mul(v, wasm_f32x4_splat(1.44269504088896340736f));
	v128_t n = wasm_f32x4_floor(t);
	n = wasm_f32x4_add(n, wasm_v128_and(wasm_f32x4_ge(wasm_f32x4_sub(t, n), wasm_f32x4_splat(0.5f)), wasm_f32x4_splat(1)));
	v128_t r = wasm_f32x4_sub(wasm_f32x4_sub(v, wasm_f32x4_mul(n, wasm_f32x4_splat(0.693359375f))),
	                          wasm_f32x4_mul(n, wasm_f32x4_splat(-2.12194440e-4f)));
	v128_t p = wasm_f32x4_splat(1.9875691500e-4f);
	p = wasm_f32x4_add(wasm_f32x4_mul(p, r), wasm_f32x4_splat(1.3981999507e-3f));
	p = wasm_f32x4_add(wasm_f32x4_mul(p, r), wasm_f32x4_splat(8.3334519073e-3f));
	p = wasm_f32x4_add(wasm_f32x4_mul(p, r), wasm_f32x4_splat(4.1665795894e-2f));
	p = wasm_f32x4_add(wasm_f32x4_mul(p, r), wasm_f32x4_splat(1.6666665459e-1f));
	p = wasm_f32x4_add(wasm_f32x4_mul(p, r), wasm_f32x4_splat(5.0000001201e-1f));
	v128_t e = wasm_f32x4_add(wasm_f32x4_add(wasm_f32x4_mul(wasm_f32x4_mul(p, r), r), r), wasm_f32x4_splat(1));
	return wasm_f32x4_mul(e, (v128_t)wasm_i32x4_shl(wasm_i32x4_add(wasm_i32x4_trunc_sat_f32x4(n), wasm_i32x4_splat(127)), 23));
}

// geluDeriv4 is the exact GELU's derivative on four lanes, as vit.GELUGrad's
// Go loop (geluDeriv) computes it: Φ(x) + x·φ(x), φ flushed to 0 below
// e^-87.33654.
static v128_t geluDeriv4(v128_t v) {
	v128_t cdf = wasm_f32x4_mul(wasm_f32x4_splat(0.5f),
	                            wasm_f32x4_add(wasm_f32x4_splat(1), erf4(wasm_f32x4_mul(v, wasm_f32x4_splat(0.70710678118654752440f)))));
	v128_t u = wasm_f32x4_mul(wasm_f32x4_mul(wasm_f32x4_splat(-0.5f), v), v);
	v128_t pdf = wasm_v128_and(exp4(u), wasm_f32x4_ge(u, wasm_f32x4_splat(-87.33654f)));
	pdf = wasm_f32x4_mul(pdf, wasm_f32x4_splat(0.39894228040143267794f));
	return wasm_f32x4_add(cdf, wasm_f32x4_mul(v, pdf));
}

// geluGrad multiplies g by GELU'(x) (geluDeriv4) on n floats.
// It runs on whole vectors of four: the caller leaves room past n in both.
__attribute__((export_name("geluGrad"))) void geluGrad(float *g, const float *x, int n) {
	for (int i = 0; i < n; i += 4)
		wasm_v128_store(g + i, wasm_f32x4_mul(wasm_v128_load(g + i), geluDeriv4(wasm_v128_load(x + i))));
}

#ifdef __wasm_atomics__
// geluGradExact is geluGrad on exactly n floats, the tail through one lane:
// a product's epilogue, where the floats past a chunk's columns are another
// thread's.
static void geluGradExact(float *g, const float *x, int n) {
	int i = n & ~3;
	geluGrad(g, x, i);
	for (; i < n; i++)
		g[i] = wasm_f32x4_extract_lane(wasm_f32x4_mul(wasm_f32x4_splat(g[i]), geluDeriv4(wasm_f32x4_splat(x[i]))), 0);
}
#endif

// gemmPanels computes columns [16·q0, 16·q1) ∩ [0, n) of C (m×n, row stride
// n) = A (m×k, row stride k) · B, plus what C held when accumulate is set,
// plus bias[j] per column j when bias is not 0, then GELU when gelu is set,
// with B packed as described above, or unpacked when layout[2] (col) is not
// 0: layout is {block, row, col} of packB, which packs each micro-panel as
// it is reached. apack holds A packed, slice by slice (packed here when
// pack is set, else by packShared); work is the calling thread's WORK
// floats; neither is the stack, which every thread's instance would place
// at the same address.
static void gemmPanels(float *c, const float *a, const float *b, float *apack, float *work, int pack, int m, int n,
                       int k, int accumulate, const float *bias, int gelu_, const int *layout, int q0, int q1) {
	int kc0 = sliceK(k);
	int mPad = (m + MR - 1) / MR * MR;
	float *edge = work, *bpanel = edge + MR * NR;
	for (int p0 = 0; p0 < k || (k == 0 && p0 == 0); p0 += kc0) {
		int kc = k - p0 < kc0 ? k - p0 : kc0;
		int acc = p0 > 0 || accumulate;
		float *as = apack + mPad * p0; // this slice's packed A
		if (pack) packA(as, a, m, k, p0, kc, 0, m);
		for (int q = q0; q < q1; q++) {
			const float *bq = b + (q * k + p0) * NR;
			int j0 = q * NR, cols = n - j0 < NR ? n - j0 : NR;
			if (layout[2]) {
				packB(bpanel, b, n, p0, kc, j0, layout[0], layout[1], layout[2]);
				bq = bpanel;
			}
			for (int i = 0; i < m; i += MR) {
				const float *ap = as + (i / MR) * kc * MR;
				int rows = m - i < MR ? m - i : MR;
				if (rows == MR && cols == NR) {
					tile(ap, bq, c + i * n + j0, kc, n, acc);
					tile(ap, bq + 8, c + i * n + j0 + 8, kc, n, acc);
					continue;
				}
				for (int r = 0; r < rows; r++)
					for (int j = 0; j < cols; j++) edge[r * NR + j] = acc ? c[(i + r) * n + j0 + j] : 0;
				tile(ap, bq, edge, kc, NR, acc);
				tile(ap, bq + 8, edge + 8, kc, NR, acc);
				for (int r = 0; r < rows; r++)
					for (int j = 0; j < cols; j++) c[(i + r) * n + j0 + j] = edge[r * NR + j];
			}
		}
		if (k == 0) break;
	}
	int j0 = q0 * NR, j1 = q1 * NR < n ? q1 * NR : n;
	for (int i = 0; i < m; i++) {
		if (bias)
			for (int j = j0; j < j1; j++) c[i * n + j] += bias[j];
		if (gelu_) gelu(c + i * n + j0, j1 - j0);
	}
}

// A product is described to the module, and shared among threads, by a
// control block of int32 words in its memory. First the threads pack A
// into ARG_APACK together (packShared: units of a k-slice's rows taken from
// PNEXT, counted in PDONE), then its column panels, cut into `chunks` runs
// of `per` panels, go the same way: every thread takes chunks from the NEXT
// counter and counts the ones it finished in DONE. A thread's WORK floats
// lie at ARG_WORK + tid·ARG_WSTRIDE bytes. The threaded build
// adds GEN (odd while a product is open to helpers) and ACTIVE (helpers
// inside one), with which gemmParallel knows when it may write the next,
// and HELPERS, the count of helpers that have started. OP says what the
// chunks are: a product's column panels (OP_GEMM), or, in the threaded build,
// rows of the lens's class logits (OP_CLASS_ROWS), attention's heads
// (OP_ATTENTION_HEADS), their backward (OP_ATTENTION_BACKWARD), the
// rollout's rows (OP_ROLLOUT_ROWS), the memories' top rows (OP_TOP_ROWS),
// GELU on a run of floats (OP_GELU: ARG_A points at them) or LayerNorm's
// backward on rows (OP_NORM_BACKWARD), ARG_A pointing at the job's arguments and ARG_M
// counting its rows or heads. ARG_BBLOCK, ARG_BROW and ARG_BCOL are an
// unpacked B's layout (packB; ARG_BCOL 0: B is packed). ARG_GELU_GRAD, in
// the threaded build, is X (m×n) for a product to be multiplied by GELU'(X)
// (the MLP's backward), 0 for none.
enum { GEN, ACTIVE, NEXT, DONE, PNEXT, PDONE, CHUNKS, PER, ARG_C, ARG_A, ARG_B, ARG_APACK, ARG_WORK, ARG_WSTRIDE,
       ARG_M, ARG_N, ARG_K, ARG_ACC, ARG_BIAS, ARG_GELU, ARG_GELU_GRAD, OP, HELPERS, ARG_BBLOCK, ARG_BROW, ARG_BCOL, CTL_WORDS };
enum { OP_GEMM, OP_CLASS_ROWS, OP_ATTENTION_HEADS, OP_ATTENTION_BACKWARD, OP_ROLLOUT_ROWS, OP_TOP_ROWS, OP_GELU,
       OP_NORM_BACKWARD };

#ifdef __wasm_atomics__
// outOfExpRange marks the lanes where vit.Exp32 leaves its polynomial
// (x < -87.33654, x > 88, NaN) for math.Exp, which exp4 does not follow:
// callers hand those rows or heads back to Go.
static v128_t outOfExpRange(v128_t x) {
	return wasm_v128_not(wasm_v128_and(wasm_f32x4_ge(x, wasm_f32x4_splat(-87.33654f)), wasm_f32x4_le(x, wasm_f32x4_splat(88.0f))));
}

// Attention's heads, one chunk each (vit/forward.go: attentionScratch.head
// is the twin, and Attention hands the kernel only heads without an edit):
// scores = q·kᵀ (the same packing and products as the Go path's, so the
// same bits), scaled, softmax as vit.Softmax rounds it (first max, Exp32,
// the sum in float64 in order), the probabilities into PROBS, then their
// product with v into the head's columns of OUT (n×heads·dh). A head with an
// exponential out of Exp32's range gets STATUS[h] = 1 and is left to Go.
// K and V are read in place through packB's layouts (the caller pads QKV by
// three rows and a panel for its over-read), which a thread keeps in its
// scratch (ints: the stack is every thread's at one address) before q, the
// head's output and the packed A.
enum { T_QKV, T_TOKENS, T_HEADS, T_DH, T_SCALE, T_OUT, T_PROBS, T_STATUS, T_SCRATCH, T_STRIDE, T_WORDS };

__attribute__((export_name("headWords"))) int headWords(void) { return T_WORDS; }

// headScratch is a thread's scratch for attention's heads, in floats.
__attribute__((export_name("headScratch"))) int headScratch(int n, int dh) {
	return 8 + 2 * n * dh + packedASize(n, n > dh ? n : dh);
}

static void attentionHeads(const int *a, int tid, int h0, int h1) {
	int n = a[T_TOKENS], heads = a[T_HEADS], dh = a[T_DH], d = heads * dh, ld = 3 * d;
	float scale = *(const float *)&a[T_SCALE];
	const float *qkv = (const float *)a[T_QKV];
	int *kT = (int *)(a[T_SCRATCH] + tid * a[T_STRIDE]), *v = kT + 4;
	float *q = (float *)(kT + 8), *o = q + n * dh, *apack = o + n * dh;
	float *work = apack + packedASize(n, n > dh ? n : dh) - WORK;
	// {block, row, col}: kᵀ (rows of qkv, strided ld) and v (row-major, ld).
	kT[0] = 16, kT[1] = 1, kT[2] = ld;
	v[0] = 16 * ld, v[1] = ld, v[2] = 1;
	for (int h = h0; h < h1; h++) {
		float *probs = (float *)a[T_PROBS] + h * n * n;
		for (int t = 0; t < n; t++)
			for (int i = 0; i < dh; i++) q[t * dh + i] = qkv[t * ld + h * dh + i];
		gemmPanels(probs, q, qkv + d + h * dh, apack, work, 1, n, n, dh, 0, 0, 0, kT, 0, (n + NR - 1) / NR);
		int bad = 0;
		for (int t = 0; t < n && !bad; t++) {
			float *row = probs + t * n, m;
			for (int s = 0; s < n; s++) row[s] *= scale;
			m = row[0];
			for (int s = 1; s < n; s++) m = row[s] > m ? row[s] : m;
			double sum = 0;
			int s = 0;
			for (; s + 4 <= n; s += 4) {
				v128_t x = wasm_f32x4_sub(wasm_v128_load(row + s), wasm_f32x4_splat(m));
				bad |= wasm_v128_any_true(outOfExpRange(x));
				v128_t e = exp4(x);
				wasm_v128_store(row + s, e);
				sum += (double)wasm_f32x4_extract_lane(e, 0);
				sum += (double)wasm_f32x4_extract_lane(e, 1);
				sum += (double)wasm_f32x4_extract_lane(e, 2);
				sum += (double)wasm_f32x4_extract_lane(e, 3);
			}
			for (; s < n; s++) {
				v128_t x = wasm_f32x4_splat(row[s] - m);
				bad |= wasm_v128_any_true(outOfExpRange(x));
				row[s] = wasm_f32x4_extract_lane(exp4(x), 0);
				sum += (double)row[s];
			}
			float inv = (float)(1 / sum);
			for (s = 0; s < n; s++) row[s] *= inv;
		}
		((int *)a[T_STATUS])[h] = bad;
		if (bad) continue;
		gemmPanels(o, probs, qkv + 2 * d + h * dh, apack, work, 1, n, dh, n, 0, 0, 0, v, 0, (dh + NR - 1) / NR);
		float *out = (float *)a[T_OUT];
		for (int t = 0; t < n; t++)
			for (int i = 0; i < dh; i++) out[t * d + h * dh + i] = o[t * dh + i];
	}
}
#endif

#ifdef __wasm_atomics__
// The lens's row pass for the threaded build (vit/lens/row.go, where the
// Go loops are its twin): each row of raw class-space projections z = E'·h
// is finished into logits as Projector.FinishRow does on this platform,
// (z − μ·s)·(1/σ) + β' in float64 rounded to float32, and read out as
// readRow does: the target's rank and logit, the top-k classes, and the
// sums behind entropy and KL, Σe, Σe·d and Σp·d with e = exp(d), d = logit
// − max, in float64 in the Go loop's order. The exponential is vit.Exp32's
// float32 operations in the same order, so every output equals the Go
// path's bit for bit. A row whose max is not finite or whose exponentials
// leave Exp32's polynomial range (a logit 87 below the max) gets rank −1:
// the caller reads that one in Go. Each row's LayerNorm statistics are
// taken here from its h (normStats), not by Go's one thread before the job.
enum { R_Z, R_H, R_DIM, R_EPS, R_S, R_BIAS, R_REF, R_TOKENS, R_CLASSES, R_TARGET, R_K, R_SCRATCH, R_OUT, R_TOP, R_WORDS };

__attribute__((export_name("classRowWords"))) int classRowWords(void) { return R_WORDS; }

// normStats is vit.NormStats: the mean of the n floats at x and
// 1/√(var+eps) as the lanes of one f64x2 (not through pointers: a local
// whose address is taken lives in the stack every thread shares), each sum
// in float64 over four interleaved lanes (two f64x2 here) added as Go adds
// them, so both are Go's bits.
static v128_t normStats(const float *x, int n, float eps) {
	v128_t s01 = wasm_f64x2_splat(0), s23 = s01;
	int i = 0;
	for (; i + 4 <= n; i += 4) {
		v128_t v = wasm_v128_load(x + i);
		s01 = wasm_f64x2_add(s01, wasm_f64x2_promote_low_f32x4(v));
		s23 = wasm_f64x2_add(s23, wasm_f64x2_promote_low_f32x4(wasm_i32x4_shuffle(v, v, 2, 3, 0, 1)));
	}
	double s0 = wasm_f64x2_extract_lane(s01, 0);
	for (int j = i; j < n; j++) s0 += (double)x[j];
	double m = (s0 + wasm_f64x2_extract_lane(s01, 1) + wasm_f64x2_extract_lane(s23, 0) + wasm_f64x2_extract_lane(s23, 1)) / n;
	v128_t mm = wasm_f64x2_splat(m);
	s01 = s23 = wasm_f64x2_splat(0);
	for (i = 0; i + 4 <= n; i += 4) {
		v128_t v = wasm_v128_load(x + i);
		v128_t d01 = wasm_f64x2_sub(wasm_f64x2_promote_low_f32x4(v), mm);
		v128_t d23 = wasm_f64x2_sub(wasm_f64x2_promote_low_f32x4(wasm_i32x4_shuffle(v, v, 2, 3, 0, 1)), mm);
		s01 = wasm_f64x2_add(s01, wasm_f64x2_mul(d01, d01));
		s23 = wasm_f64x2_add(s23, wasm_f64x2_mul(d23, d23));
	}
	s0 = wasm_f64x2_extract_lane(s01, 0);
	for (int j = i; j < n; j++) {
		double d = (double)x[j] - m;
		s0 += d * d;
	}
	double var = (s0 + wasm_f64x2_extract_lane(s01, 1) + wasm_f64x2_extract_lane(s23, 0) + wasm_f64x2_extract_lane(s23, 1)) / n;
	return wasm_f64x2_make(m, 1 / __builtin_sqrt(var + (double)eps));
}

// classRows reads rows [r0, r1) of the job a: row r's z is at Z + r·C, the
// vector it projects (DIM floats, for its LN mean and 1/σ) at H + r·DIM,
// its reference probabilities at REF + (r mod TOKENS)·C; it writes rank, target logit, Σe, Σe·d, Σp·d as
// five float64 at OUT + 5r and the top K classes at TOP + K·r. Thread tid
// uses 2·cp floats of scratch at SCRATCH + tid·2·cp, cp = C rounded up to 4.
static void classRows(const int *a, int tid, int r0, int r1) {
	int C = a[R_CLASSES], cp = (C + 3) & ~3, tokens = a[R_TOKENS], target = a[R_TARGET], K = a[R_K], dim = a[R_DIM];
	float eps = *(const float *)&a[R_EPS];
	const float *S = (const float *)a[R_S], *bias = (const float *)a[R_BIAS];
	float *L = (float *)a[R_SCRATCH] + tid * 2 * cp, *E = L + cp;
	for (int r = r0; r < r1; r++) {
		const float *z = (const float *)a[R_Z] + r * C, *ref = (const float *)a[R_REF] + (r % tokens) * C;
		v128_t stats = normStats((const float *)a[R_H] + r * dim, dim, eps);
		double mu = wasm_f64x2_extract_lane(stats, 0), sigmaInv = wasm_f64x2_extract_lane(stats, 1);
		double *out = (double *)a[R_OUT] + 5 * r;
		int *top = (int *)a[R_TOP] + K * r;
		v128_t mean = wasm_f64x2_splat(mu), inv = wasm_f64x2_splat(sigmaInv);
		v128_t mx = wasm_f32x4_splat(-__builtin_inff());
		int k = 0;
		for (; k + 4 <= C; k += 4) {
			v128_t zz = wasm_v128_load(z + k), ss = wasm_v128_load(S + k);
			v128_t zh = wasm_i32x4_shuffle(zz, zz, 2, 3, 0, 1), sh = wasm_i32x4_shuffle(ss, ss, 2, 3, 0, 1);
			v128_t lo = wasm_f64x2_mul(wasm_f64x2_sub(wasm_f64x2_promote_low_f32x4(zz), wasm_f64x2_mul(mean, wasm_f64x2_promote_low_f32x4(ss))), inv);
			v128_t hi = wasm_f64x2_mul(wasm_f64x2_sub(wasm_f64x2_promote_low_f32x4(zh), wasm_f64x2_mul(mean, wasm_f64x2_promote_low_f32x4(sh))), inv);
			v128_t f = wasm_i32x4_shuffle(wasm_f32x4_demote_f64x2_zero(lo), wasm_f32x4_demote_f64x2_zero(hi), 0, 1, 4, 5);
			f = wasm_f32x4_add(f, wasm_v128_load(bias + k));
			wasm_v128_store(L + k, f);
			mx = wasm_f32x4_max(mx, f);
		}
		float mm = wasm_f32x4_extract_lane(mx, 0), m1 = wasm_f32x4_extract_lane(mx, 1), m2 = wasm_f32x4_extract_lane(mx, 2),
		      m3 = wasm_f32x4_extract_lane(mx, 3);
		int nan = mm != mm || m1 != m1 || m2 != m2 || m3 != m3;
		mm = m1 > mm ? m1 : mm;
		mm = m2 > mm ? m2 : mm;
		mm = m3 > mm ? m3 : mm;
		for (; k < C; k++) {
			float f = (float)(((double)z[k] - mu * (double)S[k]) * sigmaInv) + bias[k];
			L[k] = f;
			nan |= f != f;
			mm = f > mm ? f : mm;
		}
		for (int j = C; j < cp; j++) L[j] = mm; // the last vector's lanes past C: e = 1, never read
		// Exp32 of d = L − max, four lanes at a time.
		v128_t shift = wasm_f32x4_splat(mm), bad = wasm_i32x4_splat(nan ? -1 : 0);
		for (k = 0; k < cp; k += 4) {
			v128_t d = wasm_f32x4_sub(wasm_v128_load(L + k), shift);
			bad = wasm_v128_or(bad, outOfExpRange(d));
			wasm_v128_store(E + k, exp4(d));
		}
		if (wasm_v128_any_true(bad)) {
			out[0] = -1;
			continue;
		}
		float lt = L[target];
		int rank = 0, n = 0;
		double s = 0, sv = 0, pv = 0;
		for (k = 0; k < C; k++) {
			float v = L[k];
			rank += v > lt;
			double d = (double)(v - mm), e = (double)E[k];
			s += e;
			sv += e * d;
			pv += (double)ref[k] * d;
			// TopK: the first K classes, then any above the K-th, each
			// placed after the classes of an equal logit.
			if (n < K || v > L[top[K - 1]]) {
				n += n < K;
				int i = n - 1;
				for (; i > 0 && v > L[top[i - 1]]; i--) top[i] = top[i - 1];
				top[i] = k;
			}
		}
		for (; n < K; n++) top[n] = -1;
		out[0] = rank;
		out[1] = lt;
		out[2] = s;
		out[3] = sv;
		out[4] = pv;
	}
}
#endif

#ifdef __wasm_atomics__
// The backward of attention's heads, one chunk each (vit/explain's
// attentionBackward is the twin, vit/attnback_js.go the caller): per head,
// with G, Q, K, V its n×dh slices of GHEADS and QKV and A its probabilities,
// ∂L/∂A = G·Vᵀ into GPROBS, and, when GQKV is not 0, ∂L/∂V = (Gᵀ·A)ᵀ,
// ∂L/∂S = softmax'(∂L/∂A)·SCALE, ∂L/∂Q = ∂L/∂S·K and ∂L/∂K = (Qᵀ·∂L/∂S)ᵀ into
// the head's columns of GQKV (n×3d). The products are gemmPanels on the same
// operands as the Go path's vit.MatMul and MatMulT (B read in place through
// packB's layouts, A gathered), and softmax' is SoftmaxBackward's float64
// arithmetic in the same order: the same bits. B operands are read up to
// three rows and a panel past their ends (packB): the caller pads QKV and
// PROBS, and each thread's gS. A thread's scratch (STRIDE bytes apart, from
// SCRATCH) holds the four layouts (ints: the stack is every thread's at one
// address), G, the gathered A operand, the product and gS.
enum { U_QKV, U_PROBS, U_GHEADS, U_GPROBS, U_GQKV, U_TOKENS, U_HEADS, U_DH, U_SCALE, U_SCRATCH, U_STRIDE, U_WORDS };

__attribute__((export_name("backHeadWords"))) int backHeadWords(void) { return U_WORDS; }

// backHeadScratch is a thread's scratch for the backward's heads, in floats.
__attribute__((export_name("backHeadScratch"))) int backHeadScratch(int n, int dh) {
	int w = n > dh ? n : dh;
	return 16 + 3 * n * dh + n * n + 4 * n + NR + packedASize(w, w);
}

static void attentionBackwardHeads(const int *a, int tid, int h0, int h1) {
	int n = a[U_TOKENS], heads = a[U_HEADS], dh = a[U_DH], d = heads * dh, ld = 3 * d;
	float scale = *(const float *)&a[U_SCALE];
	const float *qkv = (const float *)a[U_QKV], *gHeads = (const float *)a[U_GHEADS];
	float *gQKV = (float *)a[U_GQKV];
	int *lay = (int *)(a[U_SCRATCH] + tid * a[U_STRIDE]);
	float *g = (float *)(lay + 16), *x = g + n * dh, *out = x + n * dh, *gS = out + n * dh;
	int w = n > dh ? n : dh;
	float *apack = gS + n * n + 4 * n + NR, *work = apack + packedASize(w, w) - WORK;
	// {block, row, col}: rows of a row-major matrix strided ld (Bᵀ: MatMulT's
	// operand), a row-major n-wide matrix, and one strided ld.
	int *vT = lay, *byRows = lay + 4, *strided = lay + 8;
	vT[0] = 16, vT[1] = 1, vT[2] = ld;
	byRows[0] = 16 * n, byRows[1] = n, byRows[2] = 1;
	strided[0] = 16 * ld, strided[1] = ld, strided[2] = 1;
	int np = (n + NR - 1) / NR, dp = (dh + NR - 1) / NR;
	for (int h = h0; h < h1; h++) {
		int qo = h * dh, ko = d + h * dh, vo = 2 * d + h * dh;
		const float *p = (const float *)a[U_PROBS] + h * n * n;
		float *gA = (float *)a[U_GPROBS] + h * n * n;
		for (int t = 0; t < n; t++)
			for (int i = 0; i < dh; i++) g[t * dh + i] = gHeads[t * d + qo + i];
		gemmPanels(gA, g, qkv + vo, apack, work, 1, n, n, dh, 0, 0, 0, vT, 0, np); // G·Vᵀ
		if (!gQKV) continue;
		for (int t = 0; t < n; t++)
			for (int i = 0; i < dh; i++) x[i * n + t] = g[t * dh + i];
		gemmPanels(out, x, p, apack, work, 1, dh, n, n, 0, 0, 0, byRows, 0, np); // Gᵀ·A
		for (int t = 0; t < n; t++)
			for (int i = 0; i < dh; i++) gQKV[t * ld + vo + i] = out[i * n + t];
		for (int t = 0; t < n; t++) {
			float *row = gS + t * n;
			const float *gr = gA + t * n, *pr = p + t * n;
			double dot = 0;
			for (int s = 0; s < n; s++) dot += (double)gr[s] * (double)pr[s];
			for (int s = 0; s < n; s++) {
				row[s] = (float)((double)pr[s] * ((double)gr[s] - dot));
				row[s] *= scale;
			}
		}
		gemmPanels(out, gS, qkv + ko, apack, work, 1, n, dh, n, 0, 0, 0, strided, 0, dp); // ∂L/∂S·K
		for (int t = 0; t < n; t++)
			for (int i = 0; i < dh; i++) gQKV[t * ld + qo + i] = out[t * dh + i];
		for (int t = 0; t < n; t++)
			for (int i = 0; i < dh; i++) x[i * n + t] = qkv[t * ld + qo + i];
		gemmPanels(out, x, gS, apack, work, 1, dh, n, n, 0, 0, 0, byRows, 0, np); // Qᵀ·∂L/∂S
		for (int t = 0; t < n; t++)
			for (int i = 0; i < dh; i++) gQKV[t * ld + ko + i] = out[i * n + t];
	}
}

// The rows of Chefer's rollout matrix before the mean over heads
// (vit/explain's chefer is the twin, vit/rollout_js.go the caller):
// OUT[k·n + j] = Σ_h max(0, GPROBS[h,k,j]·PROBS[h,k,j]) in float64, the
// heads in order (a float32 product is exact in float64: the same bits).
enum { W_GPROBS, W_PROBS, W_OUT, W_TOKENS, W_HEADS, W_WORDS };

__attribute__((export_name("rolloutWords"))) int rolloutWords(void) { return W_WORDS; }

static void rolloutRows(const int *a, int k0, int k1) {
	int n = a[W_TOKENS], heads = a[W_HEADS];
	for (int k = k0; k < k1; k++) {
		double *out = (double *)a[W_OUT] + k * n;
		for (int j = 0; j < n; j++) out[j] = 0;
		for (int h = 0; h < heads; h++) {
			const float *g = (const float *)a[W_GPROBS] + (h * n + k) * n, *p = (const float *)a[W_PROBS] + (h * n + k) * n;
			for (int j = 0; j < n; j++) {
				double v = (double)g[j] * (double)p[j];
				if (v > 0) out[j] += v;
			}
		}
	}
}
#endif

#ifdef __wasm_atomics__
// The K largest of each row of WIDTH floats, largest first, ties to the
// lower index (lens.TopK is the twin, vit/toprows_js.go the caller, and
// memory.TokenTop's rows the job: a token's most activated memories): the
// first K enter by insertion, then only a value above the K-th, found
// sixteen at a time, as TopK's firstAbove finds it; a NaN never passes that
// test.
// Row r is at X + r·WIDTH and its classes go to OUT + r·K.
enum { K_X, K_WIDTH, K_K, K_OUT, K_WORDS };

__attribute__((export_name("topRowWords"))) int topRowWords(void) { return K_WORDS; }

static void topRows(const int *a, int r0, int r1) {
	int w = a[K_WIDTH], K = a[K_K];
	for (int r = r0; r < r1; r++) {
		const float *x = (const float *)a[K_X] + r * w;
		int *top = (int *)a[K_OUT] + r * K, n = 0, c = 0;
		for (; c < w && n < K; c++, n++) {
			int i = n;
			for (; i > 0 && x[c] > x[top[i - 1]]; i--) top[i] = top[i - 1];
			top[i] = c;
		}
		for (int i = n; i < K; i++) top[i] = -1; // fewer than K values
		if (n < K) continue;
		v128_t floor = wasm_f32x4_splat(x[top[K - 1]]); // the K-th so far: only a value above it enters
		while (c < w) {
			if (c % 16 == 0 && c + 16 <= w) {
				v128_t above = wasm_v128_or(
					wasm_v128_or(wasm_f32x4_gt(wasm_v128_load(x + c), floor), wasm_f32x4_gt(wasm_v128_load(x + c + 4), floor)),
					wasm_v128_or(wasm_f32x4_gt(wasm_v128_load(x + c + 8), floor), wasm_f32x4_gt(wasm_v128_load(x + c + 12), floor)));
				if (!wasm_v128_any_true(above)) {
					c += 16;
					continue;
				}
			}
			if (x[c] > x[top[K - 1]]) {
				int i = K - 1;
				for (; i > 0 && x[c] > x[top[i - 1]]; i--) top[i] = top[i - 1];
				top[i] = c;
				floor = wasm_f32x4_splat(x[top[K - 1]]);
			}
			c++;
		}
	}
}
#endif

#ifdef __wasm_atomics__
// LayerNorm's backward on rows (vit/explain's LayerNormBackward is the twin,
// vit/normback_js.go the caller): for each row of width D, with its mean μ
// and 1/σ from X as vit.NormStats computes them (four partial sums a pass,
// in float64), x̂ = (x−μ)/σ and ĝ = GY ⊙ W, GX = (ĝ − mean(ĝ) −
// x̂·mean(ĝ ⊙ x̂))/σ, in the Go loop's float64 operations and order: the
// same bits. GX may be GY: a row's GY is read before its GX is written.
enum { N_GX, N_GY, N_X, N_W, N_D, N_EPS, N_WORDS };

__attribute__((export_name("normBackWords"))) int normBackWords(void) { return N_WORDS; }

static void normBackwardRows(const int *a, int r0, int r1) {
	int d = a[N_D];
	double eps = (double)*(const float *)&a[N_EPS];
	const float *w = (const float *)a[N_W];
	for (int r = r0; r < r1; r++) {
		const float *x = (const float *)a[N_X] + r * d, *gy = (const float *)a[N_GY] + r * d;
		float *gx = (float *)a[N_GX] + r * d;
		// Four named sums, not an array: an array may live in the linear
		// memory's stack, which every thread's instance places at one address.
		double s0 = 0, s1 = 0, s2 = 0, s3 = 0, mean, inv, mg = 0, mgx = 0;
		int i = 0;
		for (; i + 4 <= d; i += 4) {
			s0 += (double)x[i];
			s1 += (double)x[i + 1];
			s2 += (double)x[i + 2];
			s3 += (double)x[i + 3];
		}
		for (; i < d; i++) s0 += (double)x[i];
		mean = (s0 + s1 + s2 + s3) / (double)d;
		s0 = s1 = s2 = s3 = 0;
		for (i = 0; i + 4 <= d; i += 4) {
			double d0 = (double)x[i] - mean, d1 = (double)x[i + 1] - mean, d2 = (double)x[i + 2] - mean,
			       d3 = (double)x[i + 3] - mean;
			s0 += d0 * d0;
			s1 += d1 * d1;
			s2 += d2 * d2;
			s3 += d3 * d3;
		}
		for (; i < d; i++) s0 += ((double)x[i] - mean) * ((double)x[i] - mean);
		inv = 1 / __builtin_sqrt((s0 + s1 + s2 + s3) / (double)d + eps);
		for (i = 0; i < d; i++) {
			double xh = ((double)x[i] - mean) * inv, gh = (double)gy[i] * (double)w[i];
			mg += gh;
			mgx += gh * xh;
		}
		mg /= (double)d;
		mgx /= (double)d;
		for (i = 0; i < d; i++) {
			double xh = ((double)x[i] - mean) * inv, gh = (double)gy[i] * (double)w[i];
			gx[i] = (float)((gh - mg - xh * mgx) * inv);
		}
	}
}
#endif

__attribute__((export_name("ctlWords"))) int ctlWords(void) { return CTL_WORDS; }

#ifdef __wasm_atomics__
// PACK_GROUPS is how many parts packShared cuts each k-slice's rows into:
// with a product of one slice, enough for the threads to share.
#define PACK_GROUPS 4

// packShared is thread tid's share of packing the product's A into
// ARG_APACK, once for all threads: it takes units (a k-slice's rows, a
// PACK_GROUPS-th of them) until none is left, then waits until the other
// threads have packed theirs. A thread that arrives late finds A packed.
static void packShared(int *ctl) {
	int m = ctl[ARG_M], k = ctl[ARG_K], kc0 = sliceK(k), mPad = (m + MR - 1) / MR * MR;
	int rows = ((mPad / MR + PACK_GROUPS - 1) / PACK_GROUPS) * MR;
	int units = k > 0 ? (k + kc0 - 1) / kc0 * PACK_GROUPS : 0;
	for (;;) {
		int u = __atomic_fetch_add(&ctl[PNEXT], 1, __ATOMIC_SEQ_CST);
		if (u >= units) break;
		int p0 = u / PACK_GROUPS * kc0, i0 = u % PACK_GROUPS * rows, kc = k - p0 < kc0 ? k - p0 : kc0;
		packA((float *)ctl[ARG_APACK] + mPad * p0, (const float *)ctl[ARG_A], m, k, p0, kc, i0, i0 + rows);
		if (__atomic_add_fetch(&ctl[PDONE], 1, __ATOMIC_SEQ_CST) == units)
			__builtin_wasm_memory_atomic_notify(&ctl[PDONE], -1);
	}
	for (int d; (d = __atomic_load_n(&ctl[PDONE], __ATOMIC_SEQ_CST)) < units;)
		__builtin_wasm_memory_atomic_wait32(&ctl[PDONE], d, -1);
}
#endif

// gemmChunks is thread tid's share of the job in ctl: for a product, A
// packed with the others (packShared), then chunks until none is left.
// Single-threaded, one call with tid 0 computes the whole product; the
// single-threaded build, which vit/gemm_js.go gives one chunk per product,
// packs A in gemmPanels (packShared would not fit in its 4 KiB).
__attribute__((export_name("gemmChunks"))) void gemmChunks(int *ctl, int tid) {
	int chunks = ctl[CHUNKS], per = ctl[PER], n = ctl[ARG_N], panels = (n + NR - 1) / NR, pack = 1;
#ifdef __wasm_atomics__
	if (ctl[OP] == OP_GEMM) packShared(ctl);
	pack = 0;
#endif
	for (;;) {
		int q = __atomic_fetch_add(&ctl[NEXT], 1, __ATOMIC_SEQ_CST);
		if (q >= chunks) break;
		int q1 = (q + 1) * per < panels ? (q + 1) * per : panels;
#ifdef __wasm_atomics__
		if (ctl[OP] != OP_GEMM) {
			int items = ctl[ARG_M], i1 = (q + 1) * per < items ? (q + 1) * per : items;
			if (ctl[OP] == OP_CLASS_ROWS) classRows((const int *)ctl[ARG_A], tid, q * per, i1);
			else if (ctl[OP] == OP_ATTENTION_HEADS) attentionHeads((const int *)ctl[ARG_A], tid, q * per, i1);
			else if (ctl[OP] == OP_ATTENTION_BACKWARD) attentionBackwardHeads((const int *)ctl[ARG_A], tid, q * per, i1);
			else if (ctl[OP] == OP_ROLLOUT_ROWS) rolloutRows((const int *)ctl[ARG_A], q * per, i1);
			else if (ctl[OP] == OP_TOP_ROWS) topRows((const int *)ctl[ARG_A], q * per, i1);
			else if (ctl[OP] == OP_GELU) gelu((float *)ctl[ARG_A] + q * per, i1 - q * per);
			else normBackwardRows((const int *)ctl[ARG_A], q * per, i1);
		} else
#endif
		gemmPanels((float *)ctl[ARG_C], (const float *)ctl[ARG_A], (const float *)ctl[ARG_B], (float *)ctl[ARG_APACK],
		           (float *)(ctl[ARG_WORK] + tid * ctl[ARG_WSTRIDE]), pack, ctl[ARG_M], n, ctl[ARG_K], ctl[ARG_ACC],
		           (const float *)ctl[ARG_BIAS], ctl[ARG_GELU], ctl + ARG_BBLOCK, q * per, q1);
#ifdef __wasm_atomics__
		if (ctl[ARG_GELU_GRAD]) {
			int j0 = q * per * NR, cols = (q1 * NR < n ? q1 * NR : n) - j0;
			for (int i = 0; i < ctl[ARG_M]; i++)
				geluGradExact((float *)ctl[ARG_C] + i * n + j0, (const float *)ctl[ARG_GELU_GRAD] + i * n + j0, cols);
		}
#endif
		if (__atomic_add_fetch(&ctl[DONE], 1, __ATOMIC_SEQ_CST) == chunks) {
#ifdef __wasm_atomics__
			__builtin_wasm_memory_atomic_notify(&ctl[DONE], 1);
#endif
		}
	}
}

#ifdef __wasm_atomics__
// helper is a helper thread's whole life (public/web/gemm-worker.js calls it
// once): wait for a product to open, take part in it, repeat. ACTIVE is
// raised before GEN is read again, so a product closed meanwhile is left
// untouched and its caller, which waits for ACTIVE to reach 0 before it
// writes the next product, never overwrites a control block in use.
__attribute__((export_name("helper"))) void helper(int *ctl, int tid) {
	int seen = 0;
	__atomic_fetch_add(&ctl[HELPERS], 1, __ATOMIC_SEQ_CST);
	for (;;) {
		int g = __atomic_load_n(&ctl[GEN], __ATOMIC_SEQ_CST);
		if (!(g & 1) || g == seen) {
			__builtin_wasm_memory_atomic_wait32(&ctl[GEN], g, -1);
			continue;
		}
		__atomic_fetch_add(&ctl[ACTIVE], 1, __ATOMIC_SEQ_CST);
		if (__atomic_load_n(&ctl[GEN], __ATOMIC_SEQ_CST) == g) {
			seen = g;
			gemmChunks(ctl, tid);
		}
		if (__atomic_sub_fetch(&ctl[ACTIVE], 1, __ATOMIC_SEQ_CST) == 0)
			__builtin_wasm_memory_atomic_notify(&ctl[ACTIVE], 1);
	}
}

// gemmParallel computes the product written into ctl (GEN even, ACTIVE 0)
// with the helpers: open it, do chunks as thread 0, wait until every chunk
// is done, close it and wait until no helper is inside.
__attribute__((export_name("gemmParallel"))) void gemmParallel(int *ctl) {
	__atomic_store_n(&ctl[NEXT], 0, __ATOMIC_SEQ_CST);
	__atomic_store_n(&ctl[DONE], 0, __ATOMIC_SEQ_CST);
	__atomic_fetch_add(&ctl[GEN], 1, __ATOMIC_SEQ_CST);
	__builtin_wasm_memory_atomic_notify(&ctl[GEN], -1);
	gemmChunks(ctl, 0);
	for (int d; (d = __atomic_load_n(&ctl[DONE], __ATOMIC_SEQ_CST)) < ctl[CHUNKS];)
		__builtin_wasm_memory_atomic_wait32(&ctl[DONE], d, -1);
	__atomic_fetch_add(&ctl[GEN], 1, __ATOMIC_SEQ_CST);
	for (int a; (a = __atomic_load_n(&ctl[ACTIVE], __ATOMIC_SEQ_CST)) != 0;)
		__builtin_wasm_memory_atomic_wait32(&ctl[ACTIVE], a, -1);
}
#endif
