# vitlens: `make run` serves the web app on the bundled demo model;
# `make test` installs what the tests need and runs every test.

GO      ?= go
BIN     := bin/vitlens
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
# Debian packages the tests need: Mesa's CPU Vulkan driver for the native
# WebGPU tests, Chromium for the browser tests, Fashion-MNIST for the demo,
# qemu-user for the arm64 kernel's tests, brotli for app.wasm's first-load
# size (make wasm), Node for the js/wasm tests of the SIMD kernel (wasm-check),
# clang and lld 16 to check that the committed kernels are their source's build.
TEST_DEBS := mesa-vulkan-drivers libvulkan1 chromium dataset-fashion-mnist qemu-user brotli nodejs clang-16 lld-16
# axe-core, which the browser tests run over the page (accessibility), in a
# git-ignored folder; the tests install it themselves when npm is there.
AXE := axe-core@4.14.1

export MESA_SHADER_CACHE_DIR ?= $(CURDIR)/.cache/mesa
export XDG_RUNTIME_DIR ?= /tmp/vitlens-xdg

WEB       := public/web
WASM      := $(WEB)/app.wasm
WASMFLAGS := -trimpath -ldflags="-s -w"

.PHONY: all build wasm wasm-kernel run site workers workers-check test test-deps vet wasm-check test-arm64 fuzz-short demo tuned-lens-demo bench clean weed

all: build

# The browser app (go-app components + the analysis engine) in WebAssembly.
# The vitlens binary embeds public/web/, so the wasm is built first. Its
# brotli form at level 11 (Debian brotli; about 35 s of CPU, 12% smaller than
# the level 9 the server makes at start-up) is kept beside it as app.wasm.br,
# remade only when it no longer decodes to app.wasm; the server checks that
# too and ignores a stale one.
wasm:
	GOOS=js GOARCH=wasm $(GO) build $(WASMFLAGS) -o $(WASM) ./app/wasm
	@if ! command -v brotli >/dev/null; then rm -f $(WASM).br; echo "no brotli (apt-get install brotli): app.wasm is served at brotli level 9"; \
	elif ! brotli -dc $(WASM).br 2>/dev/null | cmp -s - $(WASM); then brotli -q 11 -f -o $(WASM).br $(WASM); fi

build: wasm
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./server

run: build
	$(BIN) serve --addr 127.0.0.1:8080

# A static site for any static host (it must send application/wasm).
site: build
	rm -rf site
	$(BIN) site --out site

# The Cloudflare Worker: build/assets/ (web/ + _headers) for the asset
# store, build/pages/ (prerendered page and go-app files, embedded in the
# Worker), the Go Worker build/app.wasm and the loader from
# workers-assets-gen (which empties build/, so it runs first).
workers: build
	rm -rf workers/build
	cd workers && $(GO) run github.com/syumai/workers/cmd/workers-assets-gen -mode=go -o build
	$(BIN) site --out workers/build/site
	mkdir -p workers/build/assets workers/build/pages
	cp -r workers/build/site/web workers/build/site/_headers workers/build/assets/
	cd workers/build/site && cp index.html app.js app-worker.js wasm_exec.js manifest.webmanifest app.css ../pages/
	GOOS=js GOARCH=wasm $(GO) build -trimpath \
		-ldflags="-s -w -X main.version=$$(sha256sum $(WASM) | cut -c1-16)" \
		-o workers/build/app.wasm ./workers
	@ls -l $(WASM) workers/build/app.wasm

# Runs the Worker under `wrangler dev` (npm wrangler@4.86.0, installed under
# workers/node_modules on first use) and checks it, in the browser too.
workers-check: workers
	workers/check.sh

# Installs missing Debian packages only (apt-get update once, when needed).
test-deps:
	@missing=""; for p in $(TEST_DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@mkdir -p $(MESA_SHADER_CACHE_DIR) $(XDG_RUNTIME_DIR)
	@if command -v npm >/dev/null && [ ! -f app/e2e/node_modules/axe-core/axe.min.js ]; then \
		npm install --no-save --ignore-scripts --no-audit --no-fund --prefix app/e2e $(AXE); \
	fi

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	$(GO) vet ./...

# The browser build's SIMD matmul kernel (vit/wasmkernel/gemm.c, Debian
# clang and lld 16: apt-get install clang-16 lld-16). Its four builds are
# committed, so no other target needs clang; vit's TestWASMKernelMatchesSource
# checks that they are what the source builds to wherever clang-16 is installed.
wasm-kernel:
	sh vit/wasmkernel/build.sh $(CURDIR)/vit/wasmkernel

# The browser build of the shared packages must keep compiling, and its
# SIMD matmul (packed B and the single products' unpacked layouts) match
# the scalar path, Go's panels and torch's goldens under Node: on one
# thread, then with the threaded module's helpers (vit/wasmkernel/
# node_threads_exec: Node's worker_threads as the page's Web Workers), with
# the lens's class-row kernel and attention's heads against their Go twins,
# in the threaded module at 1 thread (VITLENS_THREADS=1: no helpers, the
# caller runs every chunk), as the engine's worker runs it at ?threads=1,
# and in the threaded module without relaxed SIMD (VITLENS_RELAXED_SIMD=off:
# gemm_threads.wasm, the browsers without it) as well as with it (Node 20
# needs a flag for it, which node_threads_exec passes); the single-threaded
# module in its simd128 build under plain Node and in its relaxed one under
# node_threads_exec without threads (VITLENS_NODE_THREADS=off).
# js/wasm tests under Node with the threaded module's helpers and relaxed SIMD.
NODE_TEST = GOOS=js GOARCH=wasm $(GO) test -count=1 -short -exec $(CURDIR)/vit/wasmkernel/node_threads_exec
# The single-threaded module's tests in package vit.
WASM_SINGLE_TESTS := 'TestSIMD|TestGEMM|TestGELU|TestMicroKernels|TestMatMul|TestLinearMatMul|TestLayoutB|TestForwardMatchesTorch'

wasm-check:
	GOOS=js GOARCH=wasm $(GO) build ./vit/... ./gpu/... ./shaders/...
	GOOS=js GOARCH=wasm $(GO) test -short -exec "$$($(GO) env GOROOT)/lib/wasm/go_js_wasm_exec" -run $(WASM_SINGLE_TESTS) ./vit/
	VITLENS_NODE_THREADS=off $(NODE_TEST) -run $(WASM_SINGLE_TESTS) ./vit/
	for run in VITLENS_THREADS= VITLENS_THREADS=1 VITLENS_RELAXED_SIMD=off; do \
	env $$run $(NODE_TEST) -run 'TestSIMD|TestGEMM|TestGELU|TestMatMul|TestLinearMatMul|TestLayoutB|TestForwardMatchesTorch|TestAttentionHeads' ./vit/ && \
	env $$run $(NODE_TEST) -run 'TestRowReaders|TestClassRow|TestFolded' ./vit/lens/ && \
	env $$run $(NODE_TEST) -run 'TestTopRows' ./vit/memory/ && \
	env $$run $(NODE_TEST) -run 'TestAttentionBackward|TestRollout|TestLayerNormBackward|TestProbsOnly|MatchAutograd' ./vit/explain/ || exit 1; done

# The vit package built for arm64 and run under qemu-user (Debian qemu-user):
# the NEON micro-kernel against the Go twin and the float64 reference, and
# the rest of the package on it. `make test` installs qemu-user and runs it.
# -short: the B/16-sized checks are minutes under emulation.
QEMU_ARM64 ?= $(shell command -v qemu-aarch64 2>/dev/null)

test-arm64:
	@test -n "$(QEMU_ARM64)" || { echo "test-arm64 needs qemu-aarch64 (apt-get install qemu-user)"; exit 1; }
	GOARCH=arm64 $(GO) test -count=1 -short -exec $(QEMU_ARM64) ./vit/

# Each loader's fuzz target for FUZZTIME (plain `go test` runs only their
# seeds, under testdata/fuzz/ and f.Add). `go test -fuzz` takes one target
# per run, so they run one after another. A count of inputs rather than a
# duration: with a duration, a worker slow to stop on a busy machine fails
# the run with "context deadline exceeded". 2000 inputs take 1 to 5 s each.
FUZZTIME ?= 2000x
FUZZ_TARGETS := \
	vit/checkpoint:FuzzLoadBytes vit/checkpoint:FuzzReadSafetensors \
	vit/checkpoint:FuzzPickle vit/checkpoint:FuzzConfigJSON \
	vit/dataset:FuzzFMNISTIDX vit/dataset:FuzzCIFAR100 vit/dataset:FuzzMask \
	vit/preprocess:FuzzDecodeInput vit/bundle:FuzzParseClassNames

fuzz-short:
	@mkdir -p $(CURDIR)/.cache
	@for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t#*:}; echo "fuzz $$name ($$pkg, $(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) -parallel 2 ./$$pkg >$(CURDIR)/.cache/fuzz.log 2>&1 \
			|| { cat $(CURDIR)/.cache/fuzz.log; exit 1; }; \
	done

# The S3 server the object-storage tests run against: SeaweedFS's weed,
# pinned in tools/seaweedfs/go.mod, a module of its own so that vitlens's
# go.mod does not gain its dependencies. Built once (minutes: a large
# program), into the git-ignored .cache/.
WEED := .cache/weed/weed
weed: $(WEED)
$(WEED): tools/seaweedfs/go.mod tools/seaweedfs/go.sum
	@mkdir -p $(dir $(WEED))
	cd tools/seaweedfs && $(GO) build -o $(CURDIR)/$(WEED) github.com/seaweedfs/seaweedfs/weed

# VITLENS_REQUIRE_S3: the S3 tests fail, rather than skip, without weed.
test: test-deps vet wasm-check wasm weed fuzz-short
	VITLENS_REQUIRE_S3=1 VITLENS_WEED=$(CURDIR)/$(WEED) \
		$(GO) test -count=1 -timeout 30m ./... # the browser tests take minutes on a busy machine
	$(GO) test -count=1 -short -tags purego ./vit/
	$(MAKE) --no-print-directory test-arm64 # a sub-make: qemu-aarch64 may have just been installed

# The paper's identifiability experiment on the demo model and Fashion-MNIST.
demo: build
	$(BIN) extract --data fmnist --out results/demo-extract
	$(BIN) extract --data fmnist --random 0 --out results/demo-extract-random
	$(BIN) summary --random results/demo-extract-random results/demo-extract

# The tuned lens on the demo model: fit on half the test set, compared on the other half.
tuned-lens-demo: build
	$(BIN) tune-lens --fit ridge --out results/tuned-ridge
	$(BIN) tune-lens --fit kl --init results/tuned-ridge/translators.safetensors --epochs 2 --lr 1e-3 --seed 1 --out results/tuned-kl
	$(BIN) report --out results/tuned-lens.html --figures results/tuned-lens-figures results/tuned-ridge results/tuned-kl

bench: build
	$(BIN) bench

clean:
	rm -rf bin results .cache site build $(WASM) workers/build
