#!/usr/bin/python3
"""Golden patch labels for vit/dataset's ImageNet-S mask sampling.

The original (spec §1.3, A18) samples the full-resolution mask with
cv2.resize(mask, (g, g), INTER_NEAREST), also for the DeiT and MIIL
preprocessing, which crop the image: its patch labels then describe pixels
the model never saw. vitlens aligns them: the binary mask goes through the
image's own geometry, resized with PIL NEAREST to the size the preset resizes
the image to and center-cropped the same way, and only then sampled to the
grid with the original's INTER_NEAREST.

Masks (testdata/dataset/mask_<w>x<h>.png) encode the category per pixel as
R + 256*G, as ImageNet-S does: a box of the target category 17, stripes of
another category (5) and of ignore (1000), background 0 elsewhere.
For each mask the JSON (testdata/dataset/mask_labels.json) holds:
  full/<g>                  the original's labels (no crop), g*g values;
  <preset>/<S>/<g>          the aligned labels for a model of input S.
Presets: deit (HF DeiT processor: resize (R, R) with R = round(S*256/224),
crop at floor((R-S)/2)) and miil (torchvision Resize(floor(S/0.875)) of the
shorter side, CenterCrop(S) at round((R-S)/2.0)).

Run from the repository root (python3-pil, python3-numpy, python3-opencv):
  /usr/bin/python3 tools/reference/make_mask_golden.py
"""

import json
import os

import cv2
import numpy as np
from PIL import Image

OUT = "testdata/dataset"
TARGET = 17
SIZES = [(301, 217), (97, 150), (500, 375), (224, 224)]
GRIDS = {224: [7, 14], 32: [4]}


def mask_ids(w, h, seed):
    rng = np.random.RandomState(seed)
    ids = np.zeros((h, w), np.int64)
    y, x = np.mgrid[0:h, 0:w]
    ids[(x // 5 + y // 7) % 9 == 0] = 5
    ids[(x + 2 * y) % 23 == 0] = 1000
    x0, y0 = int(w * rng.uniform(0.05, 0.4)), int(h * rng.uniform(0.05, 0.4))
    ids[y0 : y0 + h // 2, x0 : x0 + w // 3] = TARGET
    ids[rng.rand(h, w) < 0.02] = TARGET  # scattered pixels: every sample counts
    return ids


def save_mask(ids, path):
    rgb = np.zeros(ids.shape + (3,), np.uint8)
    rgb[..., 0] = ids % 256
    rgb[..., 1] = ids // 256
    Image.fromarray(rgb, "RGB").save(path)


def nearest_grid(binary, g):
    return cv2.resize(binary, (g, g), interpolation=cv2.INTER_NEAREST).flatten().tolist()


def deit_geometry(w, h, s):
    r = int(s * 256 / 224 + 0.5)
    return (r, r), ((r - s) // 2, (r - s) // 2)


def miil_geometry(w, h, s):
    r = s * 8 // 7  # floor(S / 0.875)
    if w <= h:
        size = (r, int(r * h / w))
    else:
        size = (int(r * w / h), r)
    left = int(round((size[0] - s) / 2.0))
    top = int(round((size[1] - s) / 2.0))
    return size, (left, top)


def aligned(binary, geometry, s, g):
    h, w = binary.shape
    (rw, rh), (left, top) = geometry(w, h, s)
    im = Image.fromarray(binary, "L").resize((rw, rh), Image.NEAREST)
    crop = np.asarray(im.crop((left, top, left + s, top + s)))
    return nearest_grid(np.ascontiguousarray(crop), g)


def main():
    os.makedirs(OUT, exist_ok=True)
    golden = {"script": "tools/reference/make_mask_golden.py", "target": TARGET, "masks": {}}
    for i, (w, h) in enumerate(SIZES):
        ids = mask_ids(w, h, i)
        name = f"mask_{w}x{h}.png"
        save_mask(ids, os.path.join(OUT, name))
        binary = (ids == TARGET).astype(np.uint8)  # A18: cast to uint8
        labels = {}
        for s, grids in GRIDS.items():
            for g in grids:
                labels[f"full/{g}"] = nearest_grid(binary, g)
                for preset, geometry in (("deit", deit_geometry), ("miil", miil_geometry)):
                    labels[f"{preset}/{s}/{g}"] = aligned(binary, geometry, s, g)
        golden["masks"][name] = labels
    path = os.path.join(OUT, "mask_labels.json")
    with open(path, "w") as f:
        json.dump(golden, f)
        f.write("\n")
    print(path, os.path.getsize(path), "bytes")


if __name__ == "__main__":
    main()
