package gpu

import (
	"fmt"

	"github.com/cogentcore/webgpu/wgpu"

	"vitlens/shaders"
)

// The matmul kernels: matmul.wgsl, the simple variant for any shape with
// weights as PyTorch stores them (n×k), and the tiled variants
// (matmul_tiled.wgsl) for k a multiple of 4 with weights laid out k-major at
// upload. A weight buffer says which layout it holds (buf.kMajor); the
// dispatch picks a tiled variant per product from its shape and the
// device's limits. With Options.F16Weights the k-major weights are stored as
// packed halves (buf.f16) and read by each tiled variant's f16 twin (the
// variant's name + shaders.F16Suffix, made by package shaders: same tile,
// f32 arithmetic).

const (
	matmulBias       = 1
	matmulGELU       = 2
	matmulAccumulate = 4
)

// matmulVariant is one tiled matmul kernel's geometry, read from its WGSL.
type matmulVariant struct {
	kernel     string
	bm, bn, bk int // output rows and columns per workgroup, k per step
}

// workgroupBytes is its workgroup memory: two buffered tiles of a and w.
func (v matmulVariant) workgroupBytes() uint32 { return uint32(2 * v.bk * (v.bm + v.bn) * 4) }

// tiledMatmuls lists the tiled variants, largest tile first.
var tiledMatmuls = func() []matmulVariant {
	var vs []matmulVariant
	for _, name := range []string{"matmul_128x128", "matmul_128x64", "matmul_64x64"} {
		vs = append(vs, matmulVariant{name, shaderConst(name, "BM"), shaderConst(name, "BN"), shaderConst(name, "BK")})
	}
	return vs
}()

// tiledInvocations is every tiled variant's workgroup (16×16).
const tiledInvocations = 256

// minTiledGroups is how many workgroups a product should give before a
// larger tile is worth it: about one per multiprocessor of a large GPU
// (132 on an H100), so big batches take the 128×128 tile and one image's
// products the smaller ones that keep the device busy.
const minTiledGroups = 128

// fitsDevice says whether the device's limits admit variant v (zero
// limits, as the browser build may report, mean WebGPU's defaults).
func (v matmulVariant) fitsDevice(lim wgpu.Limits) bool {
	storage, inv, x, y := lim.MaxComputeWorkgroupStorageSize, lim.MaxComputeInvocationsPerWorkgroup, lim.MaxComputeWorkgroupSizeX, lim.MaxComputeWorkgroupSizeY
	if storage == 0 {
		storage, inv, x, y = 16384, 256, 256, 256
	}
	return v.workgroupBytes() <= storage && inv >= tiledInvocations && x >= 16 && y >= 16
}

// tiledMatmulFor picks the tiled variant for an m×n product: the largest
// tile the device admits that still gives minTiledGroups workgroups, else
// the one (of those it admits) with the most workgroups.
func tiledMatmulFor(m, n int, lim wgpu.Limits) (matmulVariant, bool) {
	var best matmulVariant
	found := false
	for _, v := range tiledMatmuls {
		if !v.fitsDevice(lim) {
			continue
		}
		if ceilDiv(m, v.bm)*ceilDiv(n, v.bn) >= minTiledGroups {
			return v, true
		}
		best, found = v, true // the list shrinks, so the last admitted has the most groups
	}
	return best, found
}

// kMajorLayout says whether a Linear with k inputs gets its weights laid out
// k-major for the tiled variants on a device with lim.
func kMajorLayout(k int, lim wgpu.Limits) bool {
	if k%4 != 0 {
		return false
	}
	_, ok := tiledMatmulFor(1, 1, lim)
	return ok
}

// kMajor lays out a PyTorch Linear weight w (n×k) as the tiled variants read
// it: wᵀ, k rows of n rounded up to a multiple of 4, zero-padded.
func kMajor(w []float32, n, k int) []float32 {
	n4 := ceilDiv(n, 4) * 4
	out := make([]float32, k*n4)
	for j := range n {
		for kk := range k {
			out[kk*n4+j] = w[j*k+kk]
		}
	}
	return out
}

// uploadLinear uploads a Linear weight w (n×k, PyTorch's layout) as its
// products read it: k-major where a tiled matmul takes them (kMajorLayout),
// then as packed halves if f16 (half the bytes; the simple matmul's weights
// stay f32).
func uploadLinear(d *device, name string, w []float32, n, k int, f16 bool) (*buf, error) {
	if !kMajorLayout(k, d.limits) {
		return upload(d, name, f32bytes(w), wgpu.BufferUsageStorage)
	}
	km := kMajor(w, n, k)
	name, data := name+" (k-major)", f32bytes(km)
	if f16 {
		name, data = name+" (f16)", u32bytes(packF16(km))
	}
	b, err := upload(d, name, data, wgpu.BufferUsageStorage)
	if b != nil {
		b.kMajor, b.f16 = true, f16
	}
	return b, err
}

// matmul: out (m×n) = a (m×k)·wᵀ (+ bias) with optional epilogues (flags),
// on the variant w's layout and the shape call for.
func (p *program) matmul(op string, out, a, w view, bias *view, m, n, k int, flags uint32) error {
	kernel := "matmul"
	if w.b.kMajor {
		v, ok := tiledMatmulFor(m, n, p.d.limits)
		if !ok {
			return fmt.Errorf("gpu: %s: weights laid out for a tiled matmul the device does not admit", op)
		}
		kernel = v.kernel
	}
	return p.matmulWith(op, kernel, out, a, w, bias, m, n, k, flags)
}

// matmulWith records the product on one named variant (its f16 twin when
// w holds packed halves); the kernel tests call it for every variant.
func (p *program) matmulWith(op, kernel string, out, a, w view, bias *view, m, n, k int, flags uint32) error {
	bm, bn := matmulTileRows, matmulTileCols
	if kernel != "matmul" {
		if !w.b.kMajor || k%4 != 0 {
			return fmt.Errorf("gpu: %s: %s needs k-major weights and k a multiple of 4 (k = %d)", op, kernel, k)
		}
		if w.b.f16 {
			kernel += shaders.F16Suffix
		}
		bm, bn = shaderConst(kernel, "BM"), shaderConst(kernel, "BN")
	} else if w.b.kMajor {
		return fmt.Errorf("gpu: %s: the simple matmul reads n×k weights, not k-major ones", op)
	}
	b := view{b: p.ks.dummy}
	if bias != nil {
		b = *bias
		flags |= matmulBias
	}
	return p.dispatch(op, kernel, []uint32{uint32(m), uint32(n), uint32(k), flags},
		[3]uint32{uint32(ceilDiv(n, bn)), uint32(ceilDiv(m, bm)), 1}, 2*float64(m)*float64(n)*float64(k),
		a, w, b, out)
}
