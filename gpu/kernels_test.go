package gpu

import (
	"regexp"
	"strconv"
	"testing"

	"vitlens/shaders"
)

func TestShaderConstsParse(t *testing.T) {
	got := shaderConsts("const BM: u32 = 64u;\nconst  KMAX :u32= 16u ;\n    const INNER: u32 = 3u;\nconst F: f32 = 1.0;\nconst E: u32 = BM / 4u;\n// const C: u32 = 5u;\n")
	if len(got) != 2 || got["BM"] != 64 || got["KMAX"] != 16 {
		t.Errorf("parsed %v, want BM 64 and KMAX 16 only (top-level u32 literals)", got)
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
		"add": {"WG"}, "gelu": {"WG"}, "embed": {"WG"}, "patchify": {"WG"}, "pool": {"WG"}, "targets": {"WG"},
	}
	for kernel, names := range need {
		for _, n := range names {
			if _, ok := kernelConsts[kernel][n]; !ok {
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
