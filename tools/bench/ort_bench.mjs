// Times an ONNX model in ONNX Runtime's native CPU build (npm onnxruntime-node)
// for compare_torch.py: best of `reps` runs of one batch of random pixels after
// a warm-up, printed as JSON {"seconds": s, "cpuSeconds": c} (c: the best run's
// CPU time, all threads).
//
// node tools/bench/ort_bench.mjs MODEL.onnx BATCH THREADS REPS
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const ort = require("onnxruntime-node");

const [model, batch, threads, reps] = process.argv.slice(2);
const session = await ort.InferenceSession.create(model, {
  intraOpNumThreads: Number(threads),
  interOpNumThreads: 1,
  executionMode: "sequential",
  graphOptimizationLevel: "all",
});
const n = Number(batch);
const pixels = new Float32Array(n * 3 * 224 * 224).map(() => Math.random() * 2 - 1);
const feeds = { pixels: new ort.Tensor("float32", pixels, [n, 3, 224, 224]) };
await session.run(feeds); // warm-up
let best = Infinity;
let bestCPU = Infinity; // the process's CPU time (all threads), user + system
for (let i = 0; i < Number(reps); i++) {
  const t = process.hrtime.bigint();
  const c = process.cpuUsage();
  await session.run(feeds);
  best = Math.min(best, Number(process.hrtime.bigint() - t) / 1e9);
  const u = process.cpuUsage(c);
  bestCPU = Math.min(bestCPU, (u.user + u.system) / 1e6);
}
console.log(JSON.stringify({ seconds: best, cpuSeconds: bestCPU }));
