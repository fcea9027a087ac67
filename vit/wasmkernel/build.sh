#!/bin/sh
# Builds the kernel from gemm.c with Debian's clang and lld 16
# (apt-get install clang-16 lld-16: clang 14 emits relaxed SIMD's
# pre-standard opcodes, which no browser accepts): `make wasm-kernel` writes
# the committed vit/wasmkernel/gemm.wasm, gemm_fma.wasm, gemm_threads.wasm
# and gemm_threads_fma.wasm, and vit's
# TestWASMKernelMatchesSource rebuilds them into a temporary folder to
# check that they agree.
#   -msimd128      WebAssembly SIMD, in every current browser and Node >= 16
#   -mbulk-memory  memory.fill/memory.copy for the loops clang turns into
#                  memset/memcpy (there is no libc to link)
#   -Os            3 KiB (-O3: over 4 KiB, no faster in the hot loop): Chromium compiles
#                  modules synchronously on the main thread only up to 4 KiB,
#                  which gemm.wasm must stay under (wasmkernel_test.go);
#                  gemm_threads.wasm may grow past it: only the engine's
#                  worker compiles it, where any size may compile synchronously
#   --no-entry     a library: no _start; exports are the export_name functions
#   --strip-all    no names or producers section: smaller, the same bytes on every machine
# gemm_threads.wasm is the same source with atomics (-matomics: the helper
# threads' entries, atomic chunk counters), linked to import a shared
# memory of at most 4 GiB, the one WebAssembly.Memory every thread's
# instance shares (vit/gemm_js.go). The _fma builds are the same with
# relaxed SIMD too (-mrelaxed-simd: f32x4.relaxed_madd in the micro-kernel,
# gemm.c's MADD), which the engine's worker loads where the browser
# validates it (Chromium and Chrome since 114; Node 20 only with
# --experimental-wasm-relaxed-simd), and otherwise the simd128 ones; the
# page's main thread only ever compiles gemm.wasm (the 4 KiB above).
# Compiled and linked in two steps: clang's driver, when it links, runs
# binaryen's wasm-opt if one is on PATH, so the output would depend on
# whether binaryen is installed.
set -e
out=$(cd "${1:?usage: build.sh OUTDIR}" && pwd)
obj=$(mktemp)
trap 'rm -f "$obj"' EXIT
cd "$(dirname "$0")"
for build in "gemm:" "gemm_fma:-mrelaxed-simd"; do
	clang-16 --target=wasm32 -Os -msimd128 ${build#*:} -mbulk-memory -c -o "$obj" gemm.c
	wasm-ld-16 --no-entry --export=__heap_base --strip-all -o "$out/${build%%:*}.wasm" "$obj"
done
for build in "gemm_threads:" "gemm_threads_fma:-mrelaxed-simd"; do
	clang-16 --target=wasm32 -Os -msimd128 ${build#*:} -mbulk-memory -matomics -c -o "$obj" gemm.c
	wasm-ld-16 --no-entry --export=__heap_base --strip-all --shared-memory --import-memory \
		--initial-memory=1048576 --max-memory=4294967296 -o "$out/${build%%:*}.wasm" "$obj"
done
