// vitlens's analysis engine in a dedicated worker: the page's own app.wasm,
// which starts its engine loop instead of the UI when it finds no document
// (app/engine_js.go). The page talks to it with postMessage. Its first
// message is {module}: app.wasm as the page compiled it (web/boot.js), or
// null, and then the worker fetches and compiles it (same URL and version,
// so the HTTP cache or the service worker answers).
"use strict";
// The worker's moments, on the page's clock (performance.timeOrigin + now),
// for the page's performance timeline (the browser tests' breakdown).
const marks = [];
const mark = (name) => marks.push([name, performance.timeOrigin + performance.now()]);
mark("vl-worker-script");
importScripts("/wasm_exec.js");

const params = new URLSearchParams(self.location.search);
const version = params.get("v") || "";
// The page's ?gemm= (scalar, go, simd): Go reads it as VITLENS_GEMM.
const gemm = params.get("gemm") || "";
// The page's ?threads=N: at most N threads for the matmul, as VITLENS_THREADS.
const threads = params.get("threads") || "";
// The page's ?relaxed=off: the simd128 module, not the relaxed-SIMD one.
const relaxed = params.get("relaxed") || "";

self.onmessage = (e) => {
  self.onmessage = null; // the engine's Go sets its own
  mark("vl-worker-module");
  start(e.data && e.data.module);
};

async function start(module) {
  try {
    const go = new Go();
    go.env = { GOAPP_VERSION: version };
    if (gemm) go.env.VITLENS_GEMM = gemm;
    if (threads) go.env.VITLENS_THREADS = threads;
    if (relaxed) go.env.VITLENS_RELAXED_SIMD = relaxed;
    let instance;
    if (module instanceof WebAssembly.Module) {
      instance = await WebAssembly.instantiate(module, go.importObject);
      mark("vl-worker-instantiated");
    } else {
      const url = "/web/app.wasm" + (version ? "?v=" + encodeURIComponent(version) : "");
      const resp = fetch(url);
      ({ instance } = WebAssembly.instantiateStreaming
        ? await WebAssembly.instantiateStreaming(resp, go.importObject)
        : await WebAssembly.instantiate(await (await resp).arrayBuffer(), go.importObject));
      mark("vl-worker-compiled");
    }
    self.postMessage({ marks });
    await go.run(instance);
    self.postMessage({ fatal: "the engine stopped" });
  } catch (err) {
    self.postMessage({ fatal: "the engine did not start: " + err });
  }
}
