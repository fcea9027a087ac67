// vitlens's analysis engine in a dedicated worker: the page's own app.wasm
// (same URL and version, so the HTTP cache or the service worker answers),
// which starts its engine loop instead of the UI when it finds no document
// (app/engine_js.go). The page talks to it with postMessage.
"use strict";
importScripts("/wasm_exec.js");

const params = new URLSearchParams(self.location.search);
const version = params.get("v") || "";
// The page's ?gemm= (scalar, go, simd): Go reads it as VITLENS_GEMM.
const gemm = params.get("gemm") || "";
// The page's ?threads=N: at most N threads for the matmul, as VITLENS_THREADS.
const threads = params.get("threads") || "";

(async () => {
  try {
    const go = new Go();
    go.env = { GOAPP_VERSION: version };
    if (gemm) go.env.VITLENS_GEMM = gemm;
    if (threads) go.env.VITLENS_THREADS = threads;
    const url = "/web/app.wasm" + (version ? "?v=" + encodeURIComponent(version) : "");
    const resp = fetch(url);
    const { instance } = WebAssembly.instantiateStreaming
      ? await WebAssembly.instantiateStreaming(resp, go.importObject)
      : await WebAssembly.instantiate(await (await resp).arrayBuffer(), go.importObject);
    await go.run(instance);
    self.postMessage({ fatal: "the engine stopped" });
  } catch (err) {
    self.postMessage({ fatal: "the engine did not start: " + err });
  }
})();
