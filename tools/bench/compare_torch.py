#!/usr/bin/python3
"""Time ViT-B/16 and ViT-B/32 forwards (random weights) per image at batch 1 and 8, at one
thread and at all threads, in vitlens's native Go forward, PyTorch and ONNX Runtime (native
CPU build, npm onnxruntime-node) on this machine, in one run, and print the ratios.

Each figure is the best of --rounds rounds, the three runtimes taking turns within a round, each
round the best of --reps timed batches after a warm-up: the machine is shared, so only figures
measured side by side compare. Each is given in wall time and in the process's CPU time (all
threads): on a loaded machine wall time mostly says how busy it was, CPU time much less so.

Run from the repository root:
    /usr/bin/python3 tools/bench/export_onnx.py          # once: tools/bench/models/*.onnx
    (cd tools/bench && npm install --ignore-scripts)     # once: onnxruntime-node 1.30.0
    /usr/bin/python3 tools/bench/compare_torch.py [--threads 1,2] [--models B16,B32] [--batches 1,8]
Needs Debian's python3-torch (1.13) with libopenblas0-openmp, python3-torchvision, Go and Node.
"""
import argparse
import json
import os
import re
import subprocess
import tempfile
import time

import torch
import torchvision

HERE = os.path.dirname(os.path.abspath(__file__))
PATCH = {"B16": 16, "B32": 32}


def torch_model(name):
    torch.manual_seed(0)
    return torchvision.models.VisionTransformer(
        image_size=224, patch_size=PATCH[name], num_layers=12, num_heads=12,
        hidden_dim=768, mlp_dim=3072, num_classes=1000).eval()


def torch_seconds(model, batch, threads, reps):
    """Per-image wall and CPU seconds (the process's, all threads), each the best of reps."""
    torch.set_num_threads(threads)
    x = torch.randn(batch, 3, 224, 224)
    with torch.no_grad():
        model(x)  # warm-up
        best = best_cpu = float("inf")
        for _ in range(reps):
            t, c = time.perf_counter(), time.process_time()
            model(x)
            best = min(best, time.perf_counter() - t)
            best_cpu = min(best_cpu, time.process_time() - c)
    return best / batch, best_cpu / batch


def go_seconds(binary, name, batch, threads, reps):
    env = dict(os.environ, GOMAXPROCS=str(threads))
    out = subprocess.run(
        [binary, "-test.run", "XXX", "-test.bench", f"BenchmarkForward$/{name}/batch{batch}$",
         "-test.benchtime", f"{reps}x"],
        env=env, check=True, capture_output=True, text=True, cwd=os.path.join(HERE, "..", "..", "vit")).stdout
    ms = re.findall(r"([\d.]+) ms/image", out)
    cpu = re.findall(r"([\d.]+) cpu-ms/image", out)
    if not ms or not cpu:
        raise SystemExit("no benchmark result in:\n" + out)
    return float(ms[0]) / 1e3, float(cpu[0]) / 1e3


def ort_seconds(name, batch, threads, reps):
    model = os.path.join(HERE, "models", f"vit_b_{PATCH[name]}.onnx")
    out = subprocess.run(["node", os.path.join(HERE, "ort_bench.mjs"), model, str(batch), str(threads), str(reps)],
                         check=True, capture_output=True, text=True).stdout
    r = json.loads(out)
    return r["seconds"] / batch, r["cpuSeconds"] / batch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", default=f"1,{os.cpu_count()}")
    ap.add_argument("--models", default="B16,B32")
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args()
    for name in a.models.split(","):
        if not os.path.exists(os.path.join(HERE, "models", f"vit_b_{PATCH[name]}.onnx")):
            raise SystemExit("no ONNX export: run /usr/bin/python3 tools/bench/export_onnx.py first")
    if not os.path.isdir(os.path.join(HERE, "node_modules", "onnxruntime-node")):
        raise SystemExit("no ONNX Runtime: run (cd tools/bench && npm install --ignore-scripts) first")
    with tempfile.TemporaryDirectory() as tmp:
        binary = os.path.join(tmp, "vit.test")
        subprocess.run(["go", "test", "-c", "-o", binary, "./vit/"], check=True,
                       cwd=os.path.join(HERE, "..", ".."))
        kernel = subprocess.run([binary, "-test.run", "TestGEMMKernelEnv", "-test.v"], capture_output=True,
                                text=True, cwd=os.path.join(HERE, "..", "..", "vit")).stdout
        kernel = (re.findall(r"matmul path: (\S+)", kernel) or ["?"])[0]
        print(f"per-image seconds, best of {a.rounds} rounds x {a.reps} reps; PyTorch {torch.__version__}, "
              f"onnxruntime-node 1.30.0, vitlens GEMM kernel {kernel}")
        print("each line twice: wall time, then CPU time (the process's, all threads: what a loaded machine "
              "distorts least; with 2+ threads it counts idle-spinning workers too)")
        print(f"{'model':5} {'batch':>5} {'threads':>7} {'time':>4} {'vitlens':>9} {'PyTorch':>9} {'ORT':>9} "
              f"{'vs PyTorch':>10} {'vs ORT':>7} {'vs faster':>9}")
        inf = (float("inf"), float("inf"))
        best = lambda x, y: (min(x[0], y[0]), min(x[1], y[1]))
        for name in a.models.split(","):
            model = torch_model(name)
            for batch in map(int, a.batches.split(",")):
                for threads in map(int, a.threads.split(",")):
                    g = t = o = inf
                    for _ in range(a.rounds):
                        t = best(t, torch_seconds(model, batch, threads, a.reps))
                        o = best(o, ort_seconds(name, batch, threads, a.reps))
                        g = best(g, go_seconds(binary, name, batch, threads, a.reps))
                    for i, kind in enumerate(["wall", "cpu"]):
                        print(f"{name:5} {batch:5d} {threads:7d} {kind:>4} {g[i]:9.3f} {t[i]:9.3f} {o[i]:9.3f} "
                              f"{g[i] / t[i]:9.2f}x {g[i] / o[i]:6.2f}x {g[i] / min(t[i], o[i]):8.2f}x", flush=True)


if __name__ == "__main__":
    main()
