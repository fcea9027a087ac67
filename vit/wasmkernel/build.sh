#!/bin/sh
# Builds gemm.wasm from gemm.c with Debian's clang and lld 14
# (apt-get install clang lld): `make wasm-kernel` writes the committed
# vit/wasmkernel/gemm.wasm, and vit's TestWASMKernelMatchesSource rebuilds
# it into a temporary file to check that the two agree.
#   -msimd128      WebAssembly SIMD, in every current browser and Node >= 16
#   -mbulk-memory  memory.fill/memory.copy for the loops clang turns into
#                  memset/memcpy (there is no libc to link)
#   --no-entry     a library: no _start; exports are the export_name functions
#   --strip-all    no names or producers section: smaller, the same bytes on every machine
#   -Os            2 KiB (-O3: 4 KiB, no faster in the hot loop): Chromium compiles
#                  modules synchronously on the main thread only up to 4 KiB
set -e
out=${1:?usage: build.sh OUT.wasm}
cd "$(dirname "$0")"
exec clang --target=wasm32 -Os -msimd128 -mbulk-memory -nostdlib \
	-Wl,--no-entry -Wl,--export=__heap_base -Wl,--strip-all \
	-o "$out" gemm.c
