// Preloaded into Node (node -r) by node_threads_exec, it gives a Go test
// binary built for js/wasm what vit/gemm_js.go looks for before it starts
// the threaded matmul's helpers, as the browser's engine worker has them:
// Worker (over worker_threads, running public/web/gemm-worker.js),
// crossOriginIsolated (Node's SharedArrayBuffer needs no headers) and
// navigator.hardwareConcurrency (at least 2, so that one core still tests
// the helpers). Node's main thread may block in Atomics.wait, as the
// engine's worker may. `make wasm-check` runs the kernel tests under it;
// VITLENS_THREADS caps the threads as the page's ?threads= does.
"use strict";
const { Worker: NodeWorker } = require("worker_threads");
const path = require("path");
const os = require("os");
const publicDir = path.join(__dirname, "..", "..", "public");
globalThis.crossOriginIsolated = true;
globalThis.navigator ??= {};
Object.defineProperty(globalThis.navigator, "hardwareConcurrency", {
  value: Math.max(2, os.cpus().length),
  configurable: true,
});
globalThis.Worker = class {
  constructor(url) {
    // The helpers never exit; unref lets the process end with the test.
    this.worker = new NodeWorker(
      `const { parentPort, workerData } = require("worker_threads");
      globalThis.self = globalThis;
      require(workerData);
      parentPort.on("message", (data) => self.onmessage({ data }));`,
      { eval: true, workerData: path.join(publicDir, url) },
    );
    this.worker.unref();
  }
  postMessage(msg) {
    this.worker.postMessage(msg);
  }
};
