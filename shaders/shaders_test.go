package shaders

import (
	"strings"
	"testing"
)

func TestSourcesExpandIncludes(t *testing.T) {
	names := Names()
	for _, want := range []string{"add", "attention", "embed", "flash_attention", "gelu", "layernorm", "lens", "matmul", "matmul_128x128", "matmul_128x64", "matmul_64x64", "matmul_128x128_f16", "matmul_128x64_f16", "matmul_64x64_f16", "patchify", "pool", "targets"} {
		found := false
		for _, n := range names {
			found = found || n == want
		}
		if !found {
			t.Errorf("kernel %s missing from %v", want, names)
		}
	}
	for _, n := range names {
		if n == "erf" || n == "matmul_tiled" || n == "matmul_epilogue" || strings.HasPrefix(n, "matmul_weights") || n == "attention_common" {
			t.Errorf("%s.wgsl holds no kernel but is listed", n)
		}
		src := Source(n)
		if strings.Contains(src, includePrefix) {
			t.Errorf("%s: include left unexpanded", n)
		}
		if !strings.Contains(src, "fn main(") {
			t.Errorf("%s: no entry point main", n)
		}
	}
	if !strings.Contains(Source("matmul"), "fn gelu_erf(") {
		t.Error("matmul does not include erf.wgsl")
	}
}

func TestUnknownKernelPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("Source of an unknown kernel did not panic")
		}
	}()
	Source("no_such_kernel")
}

// A tiled matmul's f16 twin is its source with the packed-half weights
// included in place of the f32 ones; other kernels have no twin.
func TestF16Twins(t *testing.T) {
	f32, f16 := Source("matmul_64x64"), Source("matmul_64x64"+F16Suffix)
	if strings.Contains(f32, "unpack2x16float") || !strings.Contains(f16, "unpack2x16float") ||
		strings.Replace(f16, Source(weightsF16), Source(weightsF32), 1) != f32 {
		t.Error("matmul_64x64_f16 is not matmul_64x64 with f16 weights")
	}
	for _, n := range Names() {
		if strings.HasSuffix(n, F16Suffix) != strings.Contains(Source(n), "unpack2x16float") {
			t.Errorf("%s: f16 twin or not, its source disagrees", n)
		}
	}
}
