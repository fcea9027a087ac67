package vit

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// The committed wasmkernel/gemm.wasm is what its source builds to, where
// the tools are installed (Debian clang-16 and lld-16; `make wasm-kernel`
// rewrites it), and small enough for Chromium to compile synchronously on
// the main thread (4 KiB), as gemm_js.go does. gemm_threads.wasm may be
// larger: only the engine's worker compiles it (newThreadedOrSingle), and a
// worker may compile any size synchronously.
func TestWASMKernelMatchesSource(t *testing.T) {
	committed, err := os.ReadFile("wasmkernel/gemm.wasm")
	if err != nil {
		t.Fatal(err)
	}
	if len(committed) > 4096 {
		t.Errorf("wasmkernel/gemm.wasm is %d bytes: Chromium compiles modules over 4096 bytes only asynchronously on the main thread", len(committed))
	}
	for _, tool := range []string{"clang-16", "wasm-ld-16"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (apt-get install clang-16 lld-16): cannot rebuild the kernel to compare", tool)
		}
	}
	dir := t.TempDir()
	if msg, err := exec.Command("sh", "wasmkernel/build.sh", dir).CombinedOutput(); err != nil {
		t.Fatalf("wasmkernel/build.sh: %v\n%s", err, msg)
	}
	for _, name := range []string{"gemm.wasm", "gemm_fma.wasm", "gemm_threads.wasm", "gemm_threads_fma.wasm"} {
		committed, err := os.ReadFile(filepath.Join("wasmkernel", name))
		if err != nil {
			t.Fatal(err)
		}
		built, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(built, committed) {
			t.Errorf("wasmkernel/%s (%d bytes) differs from a build of wasmkernel/gemm.c (%d bytes): run make wasm-kernel and commit it", name, len(committed), len(built))
		}
	}
}
