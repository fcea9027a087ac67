"""Deterministic B/16-sized weights that Go reproduces bit for bit
(vit/vittest.SplitmixTensors), so no 330 MB checkpoint has to be committed.

Element j (0-based, row-major) of the timm-named tensor `name`:
  seed = FNV-1a 64 of the name's UTF-8 bytes
  x    = splitmix64 finaliser of (seed + (j+1)*0x9E3779B97F4A7C15 mod 2^64)
  u    = (x >> 40) / 2^23 - 1                    in [-1, 1), exact in float32
  value = float32(scale*u) computed in float64; scale 0.05 for weights, 0.02 for
  biases, 0.1 for pos_embed/cls_token; LayerNorm weight 1+0.1u, bias 0.1u.
"""

import numpy as np

MASK = (1 << 64) - 1


def fnv1a64(name):
    h = 0xCBF29CE484222325
    for b in name.encode("utf-8"):
        h ^= b
        h = (h * 0x100000001B3) & MASK
    return h


def uniform(name, n):
    """u in [-1, 1) as float64, for j = 0..n-1."""
    seed = np.uint64(fnv1a64(name))
    j = np.arange(1, n + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        z = seed + j * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(40)).astype(np.float64) / float(1 << 23) - 1.0


def is_norm(name):
    # norm1, norm2, the final norm and fc_norm; nothing else in timm's ViT has "norm".
    parts = name.split(".")
    return len(parts) >= 2 and "norm" in parts[-2]


def value(name, shape):
    n = int(np.prod(shape))
    u = uniform(name, n)
    if is_norm(name):
        v = 1.0 + 0.1 * u if name.endswith(".weight") else 0.1 * u
    elif name in ("pos_embed", "cls_token"):
        v = 0.1 * u
    elif name.endswith(".bias"):
        v = 0.02 * u
    else:
        v = 0.05 * u
    return v.astype(np.float32).reshape(shape)


def timm_shapes(image_size, patch_size, depth, dim, mlp_dim, classes, channels=3,
                qkv_bias=True, class_token=True, pool="cls"):
    """timm names and torch shapes, in the order vittest.SplitmixTensors lists them."""
    n = (image_size // patch_size) ** 2 + (1 if class_token else 0)
    s = {"patch_embed.proj.weight": (dim, channels, patch_size, patch_size),
         "patch_embed.proj.bias": (dim,)}
    if class_token:
        s["cls_token"] = (1, 1, dim)
    s["pos_embed"] = (1, n, dim)
    for i in range(depth):
        p = f"blocks.{i}."
        s[p + "norm1.weight"] = (dim,)
        s[p + "norm1.bias"] = (dim,)
        s[p + "attn.qkv.weight"] = (3 * dim, dim)
        if qkv_bias:
            s[p + "attn.qkv.bias"] = (3 * dim,)
        s[p + "attn.proj.weight"] = (dim, dim)
        s[p + "attn.proj.bias"] = (dim,)
        s[p + "norm2.weight"] = (dim,)
        s[p + "norm2.bias"] = (dim,)
        s[p + "mlp.fc1.weight"] = (mlp_dim, dim)
        s[p + "mlp.fc1.bias"] = (mlp_dim,)
        s[p + "mlp.fc2.weight"] = (dim, mlp_dim)
        s[p + "mlp.fc2.bias"] = (dim,)
    final = "fc_norm" if pool == "mean" else "norm"
    s[final + ".weight"] = (dim,)
    s[final + ".bias"] = (dim,)
    s["head.weight"] = (classes, dim)
    s["head.bias"] = (classes,)
    return s


def tensors(**cfg):
    return {name: value(name, shape) for name, shape in timm_shapes(**cfg).items()}
