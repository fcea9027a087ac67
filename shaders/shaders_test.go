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
