#!/bin/sh
# Builds gemm.wasm from gemm.c with Debian's clang and lld 14
# (apt-get install clang lld): `make wasm-kernel` writes the committed
# vit/wasmkernel/gemm.wasm, and vit's TestWASMKernelMatchesSource rebuilds
# it into a temporary file to check that the two agree.
#   -msimd128      WebAssembly SIMD, in every current browser and Node >= 16
#   -mbulk-memory  memory.fill/memory.copy for the loops clang turns into
#                  memset/memcpy (there is no libc to link)
#   -Os            3 KiB (-O3: over 4 KiB, no faster in the hot loop): Chromium compiles
#                  modules synchronously on the main thread only up to 4 KiB
#   --no-entry     a library: no _start; exports are the export_name functions
#   --strip-all    no names or producers section: smaller, the same bytes on every machine
# Compiled and linked in two steps: clang's driver, when it links, runs
# binaryen's wasm-opt if one is on PATH, so the output would depend on
# whether binaryen is installed.
set -e
out=${1:?usage: build.sh OUT.wasm}
obj=$(mktemp)
trap 'rm -f "$obj"' EXIT
cd "$(dirname "$0")"
clang --target=wasm32 -Os -msimd128 -mbulk-memory -c -o "$obj" gemm.c
wasm-ld --no-entry --export=__heap_base --strip-all -o "$out" "$obj"
