#!/usr/bin/python3
"""Write a vitlens class-embedding head file (`vitlens ... --head FILE`).

The file is safetensors: `weight` [classes, embed], optional `bias` [classes],
metadata `classes` (JSON list of names). vitlens reads every token through the
model's final norm, its projection head (a CLIP tower's `head`), then this map.

From CLIP zero-shot text embeddings (one row per class, e.g. the mean of
`model.encode_text(tokenize(prompts))` over prompt templates, as a .pt tensor
or .npy array [classes, embed]):

  /usr/bin/python3 tools/make_head.py --text-embeddings text.pt \\
      --classes names.txt --out clip_head.safetensors [--logit-scale 100] [--normalize]

Rows are L2-normalised (as zero-shot CLIP does). --normalize writes metadata
"normalize": "true": vitlens then L2-normalises the image embedding too, so
the logits are CLIP's (logit_scale times the cosine). Without it the class
ranks are the same (the head has no bias), the logits are those times the
image embedding's norm.

From a linear probe trained with PyTorch (a saved nn.Linear or its state_dict,
`weight` [classes, embed] and optional `bias`):

  /usr/bin/python3 tools/make_head.py --probe probe.pt --classes names.txt --out probe_head.safetensors

names.txt has one class name per line (optional; without it classes are numbered).
"""

import argparse
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "reference"))
import safetensors_io  # noqa: E402


def load_array(path):
    if path.endswith(".npy"):
        return torch.from_numpy(np.load(path))
    obj = torch.load(path, map_location="cpu")
    if isinstance(obj, torch.nn.Module):
        obj = obj.state_dict()
    return obj


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--text-embeddings", help=".pt tensor or .npy array [classes, embed]")
    src.add_argument("--probe", help="saved nn.Linear or state_dict with weight [classes, embed] (+ bias)")
    ap.add_argument("--classes", help="class names, one per line")
    ap.add_argument("--logit-scale", type=float, default=1.0,
                    help="multiply the normalised text embeddings (CLIP's logit_scale.exp(), 100 for OpenAI CLIP)")
    ap.add_argument("--normalize", action="store_true",
                    help='metadata "normalize": "true": L2-normalise the image embedding before this head')
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)

    bias = None
    if a.text_embeddings:
        w = load_array(a.text_embeddings)
        if not torch.is_tensor(w) or w.ndim != 2:
            raise SystemExit(f"{a.text_embeddings}: want one tensor [classes, embed]")
        w = w.float()
        w = a.logit_scale * w / w.norm(dim=1, keepdim=True)
    else:
        sd = load_array(a.probe)
        if not isinstance(sd, dict) or "weight" not in sd:
            raise SystemExit(f"{a.probe}: want an nn.Linear or a state_dict with 'weight' (and 'bias')")
        w = sd["weight"].float()
        bias = sd.get("bias")
        if w.ndim != 2:
            raise SystemExit(f"{a.probe}: weight has shape {tuple(w.shape)}, want [classes, embed]")
    meta = {}
    if a.classes:
        with open(a.classes) as f:
            names = [line.strip() for line in f if line.strip()]
        if len(names) != w.shape[0]:
            raise SystemExit(f"{a.classes}: {len(names)} names for {w.shape[0]} classes")
        meta["classes"] = json.dumps(names)
    if a.normalize:
        meta["normalize"] = "true"
    tensors = {"weight": w.contiguous()}
    if bias is not None:
        tensors["bias"] = bias.float().contiguous()
    safetensors_io.save(a.out, tensors, meta)
    back, _ = safetensors_io.load(a.out)
    assert np.array_equal(back["weight"], w.numpy()), "written weight differs"
    print(f"{a.out}: {w.shape[0]} classes x {w.shape[1]} embedding dims"
          f"{', bias' if bias is not None else ''}{', names' if a.classes else ''}"
          f"{', normalising the embedding' if a.normalize else ''}")


if __name__ == "__main__":
    main()
