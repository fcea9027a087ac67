#!/usr/bin/python3
"""Time a ViT-B/16 forward (batch 1, random weights) in PyTorch and in vitlens's
pure-Go forward on this machine with the same thread count, and print the ratio.

Run from the repository root:  /usr/bin/python3 tools/bench/compare_torch.py [--threads N]
Needs Debian's python3-torch and python3-torchvision, and Go.
"""
import argparse
import os
import re
import subprocess
import time

import torch
import torchvision


def torch_seconds(threads, reps):
    torch.set_num_threads(threads)
    model = torchvision.models.VisionTransformer(
        image_size=224, patch_size=16, num_layers=12, num_heads=12,
        hidden_dim=768, mlp_dim=3072, num_classes=1000).eval()
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        model(x)  # warm-up
        best = float("inf")
        for _ in range(reps):
            t = time.perf_counter()
            model(x)
            best = min(best, time.perf_counter() - t)
    return best


def go_seconds(threads, reps):
    env = dict(os.environ, GOMAXPROCS=str(threads))
    out = subprocess.run(
        ["go", "test", "-run", "XXX", "-bench", "BenchmarkForwardB16$",
         "-benchtime", f"{reps}x", "-count", "2", "./vit/"],
        env=env, check=True, capture_output=True, text=True).stdout
    ns = [float(m) for m in re.findall(r"BenchmarkForwardB16\S*\s+\d+\s+([\d.]+) ns/op", out)]
    if not ns:
        raise SystemExit("no benchmark result in:\n" + out)
    return min(ns) / 1e9


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args()
    t = torch_seconds(a.threads, a.reps)
    g = go_seconds(a.threads, a.reps)
    print(f"ViT-B/16 forward, batch 1, {a.threads} threads")
    print(f"  PyTorch {torch.__version__} ({torch.backends.mkldnn.is_available() and 'oneDNN' or 'no oneDNN'}): {t*1e3:8.1f} ms")
    print(f"  vitlens pure Go:        {g*1e3:8.1f} ms")
    print(f"  ratio Go / PyTorch:     {g/t:8.2f}x")


if __name__ == "__main__":
    main()
