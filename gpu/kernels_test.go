package gpu

import (
	"maps"
	"regexp"
	"slices"
	"strconv"
	"testing"

	"github.com/cogentcore/webgpu/wgpu"

	"vitlens/shaders"
)

func TestShaderConstsParse(t *testing.T) {
	got := shaderConsts("const BM: u32 = 64u;\nconst  KMAX :u32= 16u ;\n    const INNER: u32 = 3u;\nconst F: f32 = 1.0;\nconst E: u32 = BM / 4u;\n// const C: u32 = 5u;\n")
	if len(got) != 2 || got["BM"] != 64 || got["KMAX"] != 16 {
		t.Errorf("parsed %v, want BM 64 and KMAX 16 only (top-level u32 literals)", got)
	}
}

// The line scanner reads every kernel's constants as the regular
// expression it replaced did.
func TestShaderConstsMatchRegexp(t *testing.T) {
	decl := regexp.MustCompile(`(?m)^const\s+(\w+)\s*:\s*u32\s*=\s*(\d+)u\s*;`)
	for _, name := range shaders.Names() {
		src := shaders.Source(name)
		want := map[string]int{}
		for _, m := range decl.FindAllStringSubmatch(src, -1) {
			want[m[1]], _ = strconv.Atoi(m[2])
		}
		if got := shaderConsts(src); !maps.Equal(got, want) {
			t.Errorf("%s: read %v, want %v", name, got, want)
		}
	}
}

var workgroupSize = regexp.MustCompile(`@workgroup_size\((\w+)(?:,\s*(\w+))?\)`)

// invocations is a kernel's workgroup size (its x·y), a literal or a const.
func invocations(t *testing.T, kernel string) int {
	m := workgroupSize.FindStringSubmatch(shaders.Source(kernel))
	if m == nil {
		t.Fatalf("%s: no @workgroup_size", kernel)
	}
	n := 1
	for _, dim := range m[1:] {
		if dim == "" {
			continue
		}
		v, err := strconv.Atoi(dim)
		if err != nil {
			v = shaderConst(kernel, dim)
		}
		n *= v
	}
	return n
}

// The host reads every kernel's geometry from the WGSL: each constant it
// needs is declared, and agrees with the invocation layout the kernel's code
// assumes, so the dispatch sizes match what the shader covers.
func TestHostReadsKernelGeometry(t *testing.T) {
	need := map[string][]string{
		"matmul": {"BM", "BN", "BK"}, "attention": {"TQ", "TK", "SLOTS"}, "lens": {"TR", "TC", "KMAX"},
		"matmul_128x128": {"BM", "BN", "BK"}, "matmul_128x64": {"BM", "BN", "BK"}, "matmul_64x64": {"BM", "BN", "BK"},
		"flash_attention": {"TQ", "TK", "SLOTS"},
		"add":             {"WG"}, "gelu": {"WG"}, "embed": {"WG"}, "patchify": {"WG"}, "pool": {"WG"}, "targets": {"WG"},
	}
	for kernel, names := range need {
		for _, n := range names {
			if _, ok := constsOf(kernel)[n]; !ok {
				t.Errorf("%s.wgsl declares no const %s the host reads", kernel, n)
			}
		}
	}
	if t.Failed() {
		return
	}
	// matmul: each invocation computes a 4×4 block of the BM×BN tile.
	if got, want := invocations(t, "matmul"), matmulTileRows/4*matmulTileCols/4; got != want {
		t.Errorf("matmul: %d invocations for a %d×%d tile of 4×4 blocks (%d)", got, matmulTileRows, matmulTileCols, want)
	}
	// attention: TK invocations per query, one workgroup per TQ queries.
	if got, want := invocations(t, "attention"), attnTileQuery*shaderConst("attention", "TK"); got != want {
		t.Errorf("attention: %d invocations, want TQ·TK = %d", got, want)
	}
	// attention: each of a query's TK invocations accumulates four vec4
	// slots of the head vector, so SLOTS (maxHeadDim/4) is 4·TK.
	if tk := shaderConst("attention", "TK"); maxHeadDim != 4*4*tk {
		t.Errorf("attention: SLOTS = %d, but %d invocations per query hold 4 vec4 slots each", maxHeadDim/4, tk)
	}
	// Tiled matmuls: 16×16 invocations, each a block of BM/16 × BN/16
	// outputs in vec4 groups 64 apart; k steps of whole vec4s; both
	// buffered tiles within WebGPU's default 16 KiB of workgroup memory.
	for _, v := range tiledMatmuls {
		if got := invocations(t, v.kernel); got != tiledInvocations {
			t.Errorf("%s: %d invocations, want %d", v.kernel, got, tiledInvocations)
		}
		if v.bm%64 != 0 || v.bn%64 != 0 || v.bk%4 != 0 {
			t.Errorf("%s: tile %d×%d×%d: rows and columns must be multiples of 64, k of 4", v.kernel, v.bm, v.bn, v.bk)
		}
		if v.workgroupBytes() > 16384 {
			t.Errorf("%s: %d bytes of workgroup memory, over WebGPU's default 16384", v.kernel, v.workgroupBytes())
		}
	}
	// flash_attention: one invocation per query, keys and values of a block
	// within 16 KiB.
	if got := invocations(t, "flash_attention"); got != flashTileQuery {
		t.Errorf("flash_attention: %d invocations, want TQ = %d", got, flashTileQuery)
	}
	if bytes := 2 * shaderConst("flash_attention", "TK") * flashMaxHeadDim * 4; bytes > 16384 {
		t.Errorf("flash_attention: %d bytes of workgroup memory, over WebGPU's default 16384", bytes)
	}
	// lens: 8 invocations per row in the prologue.
	if got, want := invocations(t, "lens"), 8*lensTileRows; got != want {
		t.Errorf("lens: %d invocations, want 8·TR = %d", got, want)
	}
	// Element-wise kernels: one invocation per element, WG per workgroup.
	for _, kernel := range []string{"add", "gelu", "embed", "patchify", "pool", "targets"} {
		if got, want := invocations(t, kernel), shaderConst(kernel, "WG"); got != want {
			t.Errorf("%s: workgroup of %d invocations, WG is %d", kernel, got, want)
		}
	}
}

// The tiled variant follows the product's shape and the device's limits.
func TestTiledMatmulChoice(t *testing.T) {
	defaults := wgpu.Limits{MaxComputeWorkgroupStorageSize: 16384, MaxComputeInvocationsPerWorkgroup: 256,
		MaxComputeWorkgroupSizeX: 256, MaxComputeWorkgroupSizeY: 256}
	small := defaults
	small.MaxComputeWorkgroupStorageSize = 12288
	for _, c := range []struct {
		m, n int
		lim  wgpu.Limits
		want string
	}{
		{64 * 197, 2304, defaults, "matmul_128x128"}, // B/16 qkv, batch 64
		{64 * 197, 768, defaults, "matmul_128x128"},  // proj and fc2, batch 64
		{8 * 197, 768, defaults, "matmul_128x64"},    // 13×12 = 156 groups
		{197, 2304, defaults, "matmul_64x64"},        // one image: 4×36 groups
		{197, 768, defaults, "matmul_64x64"},         // too few for any: the most groups
		{64 * 197, 2304, small, "matmul_128x64"},     // 16 KiB tiles not admitted
		{197, 768, small, "matmul_128x64"},
		{64 * 197, 2304, wgpu.Limits{}, "matmul_128x128"}, // no limits reported: WebGPU's defaults
	} {
		v, ok := tiledMatmulFor(c.m, c.n, c.lim)
		if !ok || v.kernel != c.want {
			t.Errorf("%d×%d with %d bytes: %s (%v), want %s", c.m, c.n, c.lim.MaxComputeWorkgroupStorageSize, v.kernel, ok, c.want)
		}
	}
	tiny := defaults
	tiny.MaxComputeWorkgroupStorageSize = 8192
	if _, ok := tiledMatmulFor(197, 768, tiny); ok || kMajorLayout(768, tiny) {
		t.Error("a device with 8 KiB of workgroup memory got a tiled variant")
	}
	if kMajorLayout(147, defaults) || !kMajorLayout(768, defaults) {
		t.Error("k-major layout: want it for k = 768 only, not k = 147 (not a multiple of 4)")
	}
}

// kMajor is the transpose, padded to whole vec4s.
func TestKMajor(t *testing.T) {
	w := []float32{1, 2, 3, 4, 5, 6} // n = 3 rows of k = 2
	got := kMajor(w, 3, 2)
	want := []float32{1, 3, 5, 0, 2, 4, 6, 0}
	if !slices.Equal(got, want) {
		t.Errorf("kMajor = %v, want %v", got, want)
	}
}
