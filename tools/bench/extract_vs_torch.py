#!/usr/bin/python3
"""Images per second of `vitlens extract` against a seed-style PyTorch pipeline, on a
ViT-B/16-sized random checkpoint and a folder of 64 images (--images), four sites, at each thread count,
in one run.

The PyTorch pipeline does what the original code does per batch: a torchvision forward with
hooks on every block (its input, the attention output, the MLP output and the block output),
then for each of the 4 sites x 12 blocks the final LayerNorm and the head on every token, a
full argsort per token for the target's rank, and the top-5 classes, kept as numpy arrays.
Both sides start from the checkpoint file and the image files: the timed span covers loading
the model, decoding and preprocessing the images (the google preset: 224x224 bilinear, mean and
std 0.5), the forward, the lens and, for vitlens, writing its results folder.

Each side is timed in wall seconds and in CPU seconds (all its threads: PyTorch's own process
time, vitlens's as a child process): on a machine shared with other jobs the wall-time ratio
moves with their load, the CPU-time one much less. --timings also prints the last vitlens run's
own breakdown (`vitlens extract --timings`: opening the model, decoding, forward, lens, rows,
writing).

Run from the repository root:
    /usr/bin/python3 tools/bench/extract_vs_torch.py [--threads 1,2] [--rounds 2] [--images 64] [--timings]
Needs Debian's python3-torch (1.13) with libopenblas0-openmp, python3-torchvision,
python3-pil and Go.
"""
import argparse
import os
import resource
import subprocess
import tempfile
import time

import numpy as np
import torch
import torchvision
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
CLASSES, BATCH = 4, 16


def make_inputs(tmp, per_class):
    """A B/16-sized random torchvision checkpoint and 4 class folders of per_class random JPEGs."""
    torch.manual_seed(0)
    model = torchvision.models.VisionTransformer(
        image_size=224, patch_size=16, num_layers=12, num_heads=12, hidden_dim=768, mlp_dim=3072,
        num_classes=1000)
    torch.nn.init.normal_(model.heads.head.weight, std=0.02)  # torchvision zeroes the head
    ckpt = os.path.join(tmp, "vit_b16_random.pth")
    torch.save(model.state_dict(), ckpt)
    rng = np.random.default_rng(0)
    data = os.path.join(tmp, "images")
    for c in range(CLASSES):
        os.makedirs(os.path.join(data, f"{c:04d}"))
        for i in range(per_class):
            h, w = 240 + 8 * (i % 5), 320 - 8 * (i % 3)
            pixels = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(os.path.join(data, f"{c:04d}", f"{i:03d}.jpg"), quality=90)
    return ckpt, data


def torch_pipeline(ckpt, data, threads):
    """Wall and CPU seconds for the seed-style pipeline over every image of data."""
    torch.set_num_threads(threads)
    start, cpu = time.perf_counter(), time.process_time()
    model = torchvision.models.VisionTransformer(
        image_size=224, patch_size=16, num_layers=12, num_heads=12, hidden_dim=768, mlp_dim=3072,
        num_classes=1000)
    model.load_state_dict(torch.load(ckpt))
    model.eval()
    files = [(c, os.path.join(data, d, f)) for c, d in enumerate(sorted(os.listdir(data)))
             for f in sorted(os.listdir(os.path.join(data, d)))]
    taps = {}
    hooks = []
    for b, block in enumerate(model.encoder.layers):
        hooks.append(block.register_forward_pre_hook(
            lambda mod, inp, b=b: taps.__setitem__(("in", b), inp[0])))
        hooks.append(block.self_attention.register_forward_hook(
            lambda mod, inp, out, b=b: taps.__setitem__(("attn", b), out[0])))
        hooks.append(block.mlp.register_forward_hook(
            lambda mod, inp, out, b=b: taps.__setitem__(("mlp", b), out)))
        hooks.append(block.register_forward_hook(
            lambda mod, inp, out, b=b: taps.__setitem__(("hs", b), out)))
    mean = torch.tensor([0.5, 0.5, 0.5]).view(3, 1, 1)
    results = []
    with torch.no_grad():
        for i in range(0, len(files), BATCH):
            chunk = files[i:i + BATCH]
            x = torch.stack([
                (torch.from_numpy(np.array(Image.open(f).convert("RGB").resize((224, 224), Image.BILINEAR)))
                 .permute(2, 0, 1).float() / 255 - mean) / 0.5 for _, f in chunk])
            target = torch.tensor([c for c, _ in chunk])
            model(x)
            for b in range(len(model.encoder.layers)):
                sites = {"attn": taps[("attn", b)], "mlp": taps[("mlp", b)], "hs": taps[("hs", b)],
                         "hs_mid": taps[("in", b)] + taps[("attn", b)]}
                for site, h in sites.items():
                    logits = model.heads(model.encoder.ln(h))  # every token: B x 197 x 1000
                    order = torch.argsort(logits, dim=-1, descending=True)
                    rank = (order == target.view(-1, 1, 1)).nonzero()[:, 2].view(len(chunk), -1)
                    results.append((b, site, rank.numpy(), order[..., :5].numpy(),
                                    logits.gather(-1, target.view(-1, 1, 1).expand(-1, logits.shape[1], 1)).numpy()))
    for h in hooks:
        h.remove()
    return time.perf_counter() - start, time.process_time() - cpu


def children_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def vitlens_pipeline(binary, ckpt, data, threads, tmp, timings):
    """Wall and CPU seconds for `vitlens extract` over data, into a fresh results folder, and
    its --timings breakdown when asked for."""
    out = tempfile.mkdtemp(dir=tmp)
    env = dict(os.environ, GOMAXPROCS=str(threads))
    start, cpu = time.perf_counter(), children_cpu()
    run = subprocess.run([binary, "extract", "--model", ckpt, "--preset", "google", "--data", "folder",
                          "--root", data, "--out", os.path.join(out, "run"), "--quiet"] + ["--timings"] * timings,
                         env=env, check=True, capture_output=True, text=True)
    wall, cpu = time.perf_counter() - start, children_cpu() - cpu
    return wall, cpu, run.stderr[run.stderr.find("timings"):] if timings else ""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", default=f"1,{os.cpu_count()}")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--images", type=int, default=64, help="images in the folder (a multiple of 4)")
    ap.add_argument("--timings", action="store_true", help="print each thread count's last vitlens --timings")
    ap.add_argument("--binary", help="a vitlens binary to time instead of building ./server (an earlier commit's, for before/after)")
    a = ap.parse_args()
    per_class = max(1, a.images // CLASSES)
    n = CLASSES * per_class
    with tempfile.TemporaryDirectory() as tmp:
        binary = a.binary and os.path.abspath(a.binary)
        if not binary:
            binary = os.path.join(tmp, "vitlens")
            subprocess.run(["go", "build", "-o", binary, "./server"], check=True, cwd=ROOT)
        ckpt, data = make_inputs(tmp, per_class)
        print(f"{n} images, ViT-B/16 random, sites attn, mlp, hs_mid, hs; best of {a.rounds} rounds taking turns; "
              f"PyTorch {torch.__version__}; load + preprocess + forward + lens (+ vitlens writing its results); "
              f"load average {os.getloadavg()[0]:.1f}")
        print(f"{'threads':>7} {'vitlens img/s':>13} {'PyTorch img/s':>13} {'ratio':>6} | "
              f"{'vitlens s/img':>13} {'PyTorch s/img':>13} | {'vitlens CPU s/img':>17} {'PyTorch CPU s/img':>17} {'CPU ratio':>9}")
        for threads in map(int, a.threads.split(",")):
            g = t = gc = tc = float("inf")
            for _ in range(a.rounds):
                tw, tcpu = torch_pipeline(ckpt, data, threads)
                gw, gcpu, timings = vitlens_pipeline(binary, ckpt, data, threads, tmp, a.timings)
                t, tc, g, gc = min(t, tw), min(tc, tcpu), min(g, gw), min(gc, gcpu)
            print(f"{threads:7d} {n / g:13.2f} {n / t:13.2f} {t / g:5.2f}x | {g / n:13.3f} {t / n:13.3f} | "
                  f"{gc / n:17.3f} {tc / n:17.3f} {tc / gc:8.2f}x", flush=True)
            if a.timings:
                print(timings, end="", flush=True)
        print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
