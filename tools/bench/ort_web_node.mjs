// Times an ONNX model in onnxruntime-web's WASM backend under Node: the
// browser peer of the app's CPU path on V8 without a browser, beside
// package vit's BenchmarkForwardCPU (GOOS=js GOARCH=wasm, also under Node).
// Prints the best of `reps` runs after a warm-up, wall and process CPU
// time: on a shared machine only the CPU time of one thread means much.
//
// npm install --prefix DIR --ignore-scripts onnxruntime-web@1.30.0
// NODE_PATH=DIR/node_modules node tools/bench/ort_web_node.mjs MODEL.onnx THREADS REPS
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const ort = require("onnxruntime-web");

const [model, threads, reps] = process.argv.slice(2);
ort.env.wasm.numThreads = Number(threads);
const session = await ort.InferenceSession.create(model, { executionProviders: ["wasm"], graphOptimizationLevel: "all" });
const pixels = new Float32Array(3 * 224 * 224).map(() => Math.random() * 2 - 1);
const feeds = { pixels: new ort.Tensor("float32", pixels, [1, 3, 224, 224]) };
await session.run(feeds); // warm-up
let wall = Infinity, cpu = Infinity;
for (let i = 0; i < Number(reps); i++) {
  const t = process.hrtime.bigint(), c = process.cpuUsage();
  await session.run(feeds);
  const u = process.cpuUsage(c);
  wall = Math.min(wall, Number(process.hrtime.bigint() - t) / 1e9);
  cpu = Math.min(cpu, (u.user + u.system) / 1e6);
}
console.log(JSON.stringify({ threads: Number(threads), seconds: wall, cpuSeconds: cpu }));
