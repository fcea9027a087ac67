// vitlens's boot script. It is the page's one script that is not deferred,
// so it runs before go-app's loader (app.js) and can wrap what the loader
// calls: WebAssembly.instantiateStreaming (and instantiate, its fallback).
// It starts the analysis engine's worker (engine.js) at once, while
// app.wasm downloads, and when go-app has compiled app.wasm it posts the
// worker the WebAssembly.Module: the worker neither fetches nor compiles
// app.wasm again, and its Go start-up, its fetch and parsing of the demo
// model and its decoding of the samples run while the page's Go starts and
// draws the page. The page's Go takes the worker over (vlTakeEngine,
// app/engine_js.go); messages the worker sends before that wait in a
// queue. Where the hook gets no module, the worker is told so when the
// page's Go takes it, and loads app.wasm itself.
"use strict";
(() => {
  const params = new URLSearchParams(self.location.search);
  const script = document.currentScript;
  const version = script ? new URL(script.src).searchParams.get("v") || "" : "";
  let module = null; // app.wasm, compiled
  let early = null; // {worker, queued, sent}: the worker started at once

  // startEngine starts the engine's worker. Null where workers are
  // unavailable or ?worker=off asks for the engine in the page.
  function startEngine() {
    if (typeof Worker === "undefined" || params.get("worker") === "off") return null;
    let src = "/web/engine.js?v=" + encodeURIComponent(version);
    // ?gemm= (the matmul kernel), ?threads= (its thread cap) and
    // ?relaxed=off (no relaxed SIMD) go to the engine as VITLENS_GEMM,
    // VITLENS_THREADS and VITLENS_RELAXED_SIMD.
    for (const key of ["gemm", "threads", "relaxed"]) {
      const value = params.get(key);
      if (value) src += "&" + key + "=" + encodeURIComponent(value);
    }
    try {
      const worker = new Worker(src, { name: "vitlens-engine" });
      const queued = [];
      worker.onmessage = worker.onerror = (e) => queued.push(e);
      performance.mark("vl-worker-start");
      return { worker, queued, sent: false };
    } catch (err) {
      console.warn("vitlens: the engine's worker did not start:", err);
      return null;
    }
  }

  // send gives the worker its first message: the module, or null (it then
  // loads app.wasm itself).
  function send(engine) {
    if (engine && !engine.sent) {
      engine.sent = true;
      engine.worker.postMessage({ module });
    }
  }

  // keep takes the first Go program's module (its imports have Go's "gojs"
  // module: app.wasm, not the matmul kernel the engine instantiates) and
  // sends it to the worker.
  function keep(result, imports) {
    if (module || !imports || !imports.gojs) return;
    module = result instanceof WebAssembly.Module ? result : result && result.module;
    if (!(module instanceof WebAssembly.Module)) {
      module = null;
      return;
    }
    performance.mark("vl-wasm-compiled");
    send(early);
  }

  const streaming = WebAssembly.instantiateStreaming;
  const instantiate = WebAssembly.instantiate;
  if (streaming) {
    WebAssembly.instantiateStreaming = async function (source, imports) {
      const result = await streaming.call(WebAssembly, source, imports);
      keep(result, imports);
      return result;
    };
  }
  WebAssembly.instantiate = async function (source, imports) {
    const result = await instantiate.call(WebAssembly, source, imports);
    // instantiate(Module) answers an Instance: the module is the argument.
    keep(source instanceof WebAssembly.Module ? source : result, imports);
    return result;
  };

  early = startEngine();

  // The service worker is registered once the first analysis is drawn
  // (the page's Go calls vlFirstDrawn), or after 10 s: installing it
  // fetches app.wasm and the demo again to precache them, which on a
  // small machine takes cores from the page's start-up and the engine's.
  // go-app's loader calls register at once; this holds the call back.
  const sw = navigator.serviceWorker;
  if (sw && typeof sw.register === "function") {
    let go;
    const drawn = new Promise((resolve) => {
      go = resolve;
      setTimeout(resolve, 10000);
    });
    self.vlFirstDrawn = () => go();
    const register = sw.register;
    sw.register = (...args) => drawn.then(() => register.apply(sw, args));
  }

  // vlTakeEngine hands the page's Go the worker started at once, the
  // first time, or starts one now: {worker, queued} (the messages and
  // errors it sent so far), or null for the engine in the page. A worker
  // that has no module by then is told to load app.wasm itself.
  self.vlTakeEngine = () => {
    const taken = early || startEngine();
    early = null;
    send(taken);
    return taken;
  };
})();
