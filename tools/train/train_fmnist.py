#!/usr/bin/python3
"""Train the vitlens demo model: a small torchvision ViT on Fashion-MNIST.

Recipe (from /work/shared/notes/platform.md): VisionTransformer(image_size=28,
patch_size=7, num_layers=6, num_heads=4, hidden_dim=64, mlp_dim=256,
num_classes=10); grayscale copied to 3 channels; normalised with mean 0.2860,
std 0.3530; AdamW lr 2e-3, weight decay 0.05, batch 128; +-2 px random shifts
and horizontal flips; linear warmup then cosine decay.

Writes (paths relative to the repository root):
  public/models/fmnist-vit.safetensors   timm names, __metadata__ config etc.
  public/models/fmnist-classes.txt
  public/samples/fmnist-test-<index>-<slug>.png + labels.csv (30 test images)
  testdata/reference/fmnist/golden.safetensors (torch logits of the samples)

Run from the repository root:
  /usr/bin/python3 tools/train/train_fmnist.py            # train + everything
  /usr/bin/python3 tools/train/train_fmnist.py --golden   # only samples + golden, from the saved model
"""

import argparse
import csv
import gzip
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from PIL import Image

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tools", "reference"))
import safetensors_io  # noqa: E402
import vitnames  # noqa: E402

DATA = "/usr/share/datasets/fashion-mnist"
CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
MEAN, STD = 0.2860, 0.3530
CFG = dict(image_size=28, patch_size=7, num_layers=6, num_heads=4, hidden_dim=64, mlp_dim=256,
           num_classes=10)
MODEL_PATH = os.path.join(ROOT, "public", "models", "fmnist-vit.safetensors")
SAMPLES = os.path.join(ROOT, "public", "samples")
GOLDEN = os.path.join(ROOT, "testdata", "reference", "fmnist", "golden.safetensors")


def read_idx(name):
    """Debian ships the original gzipped big-endian IDX files."""
    with gzip.open(os.path.join(DATA, name), "rb") as f:
        data = f.read()
    magic = int.from_bytes(data[0:4], "big")
    ndim = magic & 0xFF
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def normalise(u8):
    """uint8 (B,28,28) -> float (B,3,28,28), the exact preprocessing the Go side mirrors."""
    x = torch.as_tensor(u8, dtype=torch.float32) / 255.0
    x = (x - MEAN) / STD
    return x.unsqueeze(1).expand(-1, 3, -1, -1).contiguous()


def augment(u8, gen):
    """+-2 px shifts (zero padding, i.e. black background) and horizontal flips."""
    b = u8.shape[0]
    padded = F.pad(u8, (2, 2, 2, 2))
    oy = torch.randint(0, 5, (b,), generator=gen)
    ox = torch.randint(0, 5, (b,), generator=gen)
    ar = torch.arange(28)
    rows = (oy[:, None] + ar)[:, :, None]
    cols = (ox[:, None] + ar)[:, None, :]
    out = padded[torch.arange(b)[:, None, None], rows, cols]
    flip = torch.rand(b, generator=gen) < 0.5
    out[flip] = out[flip].flip(-1)
    return out


def make_model():
    return torchvision.models.VisionTransformer(**CFG)


@torch.no_grad()
def evaluate(model, x_u8, y):
    model.eval()
    correct = 0
    for i in range(0, len(y), 1000):
        logits = model(normalise(x_u8[i:i + 1000]))
        correct += (logits.argmax(1) == y[i:i + 1000]).sum().item()
    return correct / len(y)


def metadata(acc, epochs, train_s):
    cfg = vitnames.config_json(28, 7, 6, 4, 64, 256, 10, qkv_bias=True, ln_eps=1e-6)
    return {
        "config": cfg,
        "preset": "fmnist",
        "test_accuracy": f"{acc:.4f}",
        "classes": json.dumps(CLASSES),
        "preprocess": json.dumps({"grayscale_to_rgb": True, "mean": [MEAN] * 3, "std": [STD] * 3,
                                  "resize": 28}),
        "source": ("tools/train/train_fmnist.py: torchvision VisionTransformer(28, patch 7, 6 layers, "
                   "4 heads, dim 64, mlp 256, 10 classes) on Fashion-MNIST (Debian "
                   "dataset-fashion-mnist), gray->3ch, mean 0.2860 std 0.3530, AdamW lr 2e-3 wd 0.05, "
                   f"batch 128, +-2px shifts + hflips, warmup + cosine, {epochs} epochs, "
                   f"{train_s:.0f} s on one thread of a shared 2-core machine; test_accuracy on all 10k test images"),
    }


def train(args):
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    xtr = torch.as_tensor(read_idx("train-images-idx3-ubyte.gz").copy())
    ytr = torch.as_tensor(read_idx("train-labels-idx1-ubyte.gz").astype(np.int64))
    xte = torch.as_tensor(read_idx("t10k-images-idx3-ubyte.gz").copy())
    yte = torch.as_tensor(read_idx("t10k-labels-idx1-ubyte.gz").astype(np.int64))
    model = make_model()
    print(f"params {sum(p.numel() for p in model.parameters())}", flush=True)
    # No weight decay on norms, biases and token/position embeddings (usual ViT practice).
    decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "pos_embedding" not in n
             and "class_token" not in n]
    no_decay = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "pos_embedding" not in n
                and "class_token" not in n)]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05},
                             {"params": no_decay, "weight_decay": 0.0}], lr=args.lr)
    bs = 128
    steps_per_epoch = len(ytr) // bs
    total = steps_per_epoch * args.epochs
    warm = steps_per_epoch * args.warmup

    def lr_at(step):
        if step < warm:
            return args.lr * (step + 1) / warm
        return args.lr * 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, total - warm)))

    step = 0
    t0 = time.time()
    for epoch in range(args.epochs):
        model.train()
        perm = torch.randperm(len(ytr), generator=gen)
        run_loss = 0.0
        for i in range(steps_per_epoch):
            idx = perm[i * bs:(i + 1) * bs]
            x = normalise(augment(xtr[idx], gen))
            for g in opt.param_groups:
                g["lr"] = lr_at(step)
            loss = F.cross_entropy(model(x), ytr[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            run_loss += loss.item()
            step += 1
            if args.max_steps and step >= args.max_steps:
                print(f"{step} steps in {time.time() - t0:.1f} s", flush=True)
                return
        acc = evaluate(model, xte, yte)
        print(f"epoch {epoch + 1}/{args.epochs} loss {run_loss / steps_per_epoch:.4f} "
              f"test_acc {acc * 100:.2f}% elapsed {time.time() - t0:.0f} s", flush=True)
    train_s = time.time() - t0
    acc = evaluate(model, xte, yte)
    os.makedirs(os.path.dirname(MODEL_PATH), exist_ok=True)
    timm_sd = vitnames.torchvision_to_timm(model.state_dict())
    safetensors_io.save(MODEL_PATH, timm_sd, metadata(acc, args.epochs, train_s))
    with open(os.path.join(ROOT, "public", "models", "fmnist-classes.txt"), "w") as f:
        f.write("\n".join(CLASSES) + "\n")
    print(f"final test accuracy {acc * 100:.2f}% ({train_s:.0f} s); wrote {MODEL_PATH}", flush=True)


def slug(name):
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-").replace("--", "-")


def load_saved_model():
    tensors, meta = safetensors_io.load(MODEL_PATH)
    model = make_model()
    sd = vitnames.timm_to_torchvision({k: torch.from_numpy(v) for k, v in tensors.items()},
                                      model.state_dict().keys())
    model.load_state_dict(sd)
    model.eval()
    return model, meta


@torch.no_grad()
def golden():
    """Samples as PNG, then torch logits of the PNGs as read back (what Go will read)."""
    model, meta = load_saved_model()
    xte = read_idx("t10k-images-idx3-ubyte.gz")
    yte = read_idx("t10k-labels-idx1-ubyte.gz")
    # Accuracy of the reloaded weights must match the recorded one.
    acc = evaluate(model, torch.as_tensor(xte.copy()), torch.as_tensor(yte.astype(np.int64)))
    assert f"{acc:.4f}" == meta["test_accuracy"], (acc, meta["test_accuracy"])
    os.makedirs(SAMPLES, exist_ok=True)
    rows = []
    for c in range(10):
        for index in np.nonzero(yte == c)[0][:3]:
            rows.append((int(index), c))
    rows.sort()  # test-set order
    files = []
    with open(os.path.join(SAMPLES, "labels.csv"), "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["file", "label", "class"])
        for index, c in rows:
            name = f"fmnist-test-{index}-{slug(CLASSES[c])}.png"
            Image.fromarray(xte[index], mode="L").save(os.path.join(SAMPLES, name), optimize=True)
            w.writerow([name, c, CLASSES[c]])
            files.append(name)
    to_tensor = torchvision.transforms.ToTensor()
    out = {}
    hs = {}
    hooks = [layer.register_forward_hook(lambda m, i, o, b=b: hs.__setitem__(b, o))
             for b, layer in enumerate(model.encoder.layers)]
    correct = 0
    for k, name in enumerate(files):
        img = Image.open(os.path.join(SAMPLES, name)).convert("L")
        x = to_tensor(img).expand(3, -1, -1)
        x = ((x - MEAN) / STD).unsqueeze(0)
        logits = model(x)[0]
        out[f"logits.{k}"] = logits
        correct += int(logits.argmax().item() == rows[k][1])
        if k == 0:
            out["input.0"] = x[0]
            for b in range(len(model.encoder.layers)):
                out[f"hs.{b}.0"] = hs[b][0]
    for h in hooks:
        h.remove()
    os.makedirs(os.path.dirname(GOLDEN), exist_ok=True)
    safetensors_io.save(GOLDEN, out, {
        "script": "tools/train/train_fmnist.py --golden",
        "model": "public/models/fmnist-vit.safetensors",
        "config": meta["config"],
        "files": json.dumps(files),
        "labels": json.dumps([c for _, c in rows]),
        "preprocess": "PIL L -> ToTensor -> 3 channels -> (x-0.2860)/0.3530",
        "samples_correct": str(correct),
    })
    print(f"wrote {len(files)} samples ({correct} classified correctly) and {GOLDEN}")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--warmup", type=int, default=1, help="warmup epochs")
    p.add_argument("--lr", type=float, default=2e-3)
    # One thread: measured 0.16-0.20 s/step against 0.38 with two (OpenMP overhead on
    # these tiny matmuls, on 2 shared cores).
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--max-steps", type=int, default=0, help="stop early (timing runs)")
    p.add_argument("--golden", action="store_true", help="skip training; samples + golden only")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if not args.golden:
        train(args)
        if args.max_steps:
            return
    golden()


if __name__ == "__main__":
    main()
