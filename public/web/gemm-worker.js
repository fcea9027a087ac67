// A helper thread of vitlens's browser matmul (vit/gemm_js.go): the engine's
// worker sends the threaded kernel's compiled module, the shared memory and
// the control block's address; this thread instantiates the module on that
// memory and spends its life in the module's helper loop, which sleeps in
// memory.atomic.wait32 until a product opens and takes its chunks.
"use strict";
self.onmessage = (e) => {
  const { module, memory, ctl, tid } = e.data;
  const instance = new WebAssembly.Instance(module, { env: { memory } });
  instance.exports.helper(ctl, tid);
};
