# vitlens: `make run` serves the web app on the bundled demo model;
# `make test` installs what the tests need and runs every test.

GO      ?= go
BIN     := bin/vitlens
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
# Debian packages the tests need: Mesa's CPU Vulkan driver for the native
# WebGPU tests, Chromium for the browser tests, Fashion-MNIST for the demo.
TEST_DEBS := mesa-vulkan-drivers libvulkan1 chromium dataset-fashion-mnist

export MESA_SHADER_CACHE_DIR ?= $(CURDIR)/.cache/mesa
export XDG_RUNTIME_DIR ?= /tmp/vitlens-xdg

.PHONY: all build run test test-deps vet wasm-check demo bench clean

all: build

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./server

run: build
	$(BIN) serve

# Installs missing Debian packages only (apt-get update once, when needed).
test-deps:
	@missing=""; for p in $(TEST_DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@mkdir -p $(MESA_SHADER_CACHE_DIR) $(XDG_RUNTIME_DIR)

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	$(GO) vet ./...

# The browser build of the shared packages must keep compiling.
wasm-check:
	GOOS=js GOARCH=wasm $(GO) build ./vit/... ./gpu/... ./shaders/...

test: test-deps vet wasm-check
	$(GO) test -count=1 ./...
	$(GO) test -count=1 -short -tags purego ./vit/

# The paper's identifiability experiment on the demo model and Fashion-MNIST.
demo: build
	$(BIN) extract --data fmnist --out results/demo-extract
	$(BIN) extract --data fmnist --random 0 --out results/demo-extract-random
	$(BIN) summary --random results/demo-extract-random results/demo-extract

bench: build
	$(BIN) bench

clean:
	rm -rf bin results .cache
