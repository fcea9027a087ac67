#!/usr/bin/python3
"""Golden fixtures for vit/preprocess: test images and the tensors the original
preprocessing pipelines make from them.

Run by hand with Debian's interpreter (python3-pil 9.4, python3-numpy,
python3-torch, python3-torchvision), from the repository root:

    /usr/bin/python3 tools/reference/make_preprocess_golden.py

It writes testdata/preprocess/*.png|jpg and testdata/preprocess/golden.safetensors.
Tensor names are "<preset>/<size>/<image file>". F32 tensors are the (3, S, S)
model inputs. The 224 cases are stored as U8 (3, 224, 224) pixel values before
scaling and normalisation to keep the fixtures small; the script checks that
normalising them reproduces the float pipeline. "decoded/<file>" holds PIL's
decoded RGB pixels of the JPEGs and WebPs, to check decoding separately.

The pipelines are rebuilt from PIL exactly as the originals run them
(transformers and timm are not installed here):
  google: HF ViTImageProcessor: resize (S, S) BILINEAR, rescale 1/255, normalise 0.5/0.5
  deit:   HF DeiT processor: resize (R, R) BICUBIC with R = round(S*256/224),
          center_crop top = (R-S)//2, rescale, normalise ImageNet mean/std
  miil:   timm eval transform: torchvision Resize(floor(S/0.875)) BILINEAR,
          CenterCrop(S), ToTensor, Normalize(0, 1)
  cifar:  torchvision Resize((S, S)), CenterCrop(S), ToTensor, Normalize(0.5, 0.5)
  fmnist: convert('L'), resize (S, S) BILINEAR if needed, ToTensor,
          Normalize(0.2860, 0.3530), repeated to 3 channels
"""

import math
import os
import sys

import numpy as np
import PIL
import torch
import torchvision.transforms as T
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io  # noqa: E402

OUT = "testdata/preprocess"


def pattern(w, h, seed):
    """Smooth gradients, stripes, a hard-edged box and noise: every resampling
    filter lobe and every rounding path gets exercised."""
    rng = np.random.RandomState(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 128 + 110 * np.sin(x / (1.3 + w / 40) + y / (2.1 + h / 50))
    g = 255 * x / max(w - 1, 1)
    b = 255 * ((x // max(w // 6, 1) + y // max(h // 5, 1)) % 2)
    img = np.stack([r, g, b], axis=-1)
    x0, y0 = w // 3, h // 4
    img[y0 : y0 + h // 3, x0 : x0 + w // 4] = (250, 10, 128)
    img += rng.normal(0, 12, img.shape)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def make_images():
    imgs = {}
    imgs["rgb_17x23.png"] = Image.fromarray(pattern(17, 23, 1), "RGB")
    rgba = np.concatenate(
        [pattern(40, 31, 2), np.linspace(0, 255, 40 * 31).reshape(31, 40, 1).astype(np.uint8)], axis=-1
    )
    rgba[:4, :, 3] = 0  # transparent pixels that still carry colour: must not be composited
    imgs["rgba_40x31.png"] = Image.fromarray(rgba, "RGBA")
    imgs["gray_300x200.png"] = Image.fromarray(pattern(300, 200, 3)[..., 0], "L")
    imgs["rgb_224x224.png"] = Image.fromarray(pattern(224, 224, 4), "RGB")
    pal = Image.fromarray(pattern(500, 375, 5), "RGB").quantize(colors=200, method=Image.Quantize.MEDIANCUT)
    pal.info["transparency"] = 3
    imgs["pal_500x375.png"] = pal
    imgs["rgb_7x5.png"] = Image.fromarray(pattern(7, 5, 6), "RGB")
    la = np.stack([pattern(33, 47, 7)[..., 1], pattern(33, 47, 8)[..., 0]], axis=-1)
    imgs["la_33x47.png"] = Image.fromarray(la, "LA")
    imgs["gray_28x28.png"] = Image.fromarray(pattern(28, 28, 9)[..., 2], "L")
    imgs["photo_64x48.jpg"] = Image.fromarray(pattern(64, 48, 10), "RGB")
    for name, im in imgs.items():
        path = os.path.join(OUT, name)
        if name.endswith(".jpg"):
            im.save(path, quality=90)
        elif name.startswith("pal_"):
            im.save(path, transparency=3)
        else:
            im.save(path)
    # Every pipeline starts from the file as decoded, like the originals.
    return {name: Image.open(os.path.join(OUT, name)) for name in imgs}


def hf_normalize(u8_hwc, mean, std):
    """HF rescale (float64 * 1/255, cast to float32) then normalise in float32."""
    x = (u8_hwc.astype(np.float64) * (1 / 255)).astype(np.float32)
    x = (x - np.array(mean, np.float32)) / np.array(std, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def google(im, s):
    u8 = np.array(im.convert("RGB").resize((s, s), resample=Image.BILINEAR))
    return u8, hf_normalize(u8, [0.5] * 3, [0.5] * 3)


def deit(im, s):
    r = round(s * 256 / 224)
    u8 = np.array(im.convert("RGB").resize((r, r), resample=Image.BICUBIC))
    top = (r - s) // 2
    left = (r - s) // 2
    u8 = u8[top : top + s, left : left + s]
    return u8, hf_normalize(u8, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225])


def torchvision_pipeline(im, geometry, mean, std):
    pil = geometry(im.convert("RGB"))
    u8 = np.array(pil)
    t = T.Compose([T.ToTensor(), T.Normalize(mean, std)])(pil)
    return u8, t.numpy()


def miil(im, s):
    geometry = T.Compose([T.Resize(math.floor(s / 0.875), interpolation=T.InterpolationMode.BILINEAR), T.CenterCrop(s)])
    return torchvision_pipeline(im, geometry, (0.0,) * 3, (1.0,) * 3)


def cifar(im, s):
    geometry = T.Compose([T.Resize((s, s)), T.CenterCrop(s)])
    return torchvision_pipeline(im, geometry, (0.5,) * 3, (0.5,) * 3)


def fmnist(im, s):
    g = im.convert("L")
    if g.size != (s, s):
        g = g.resize((s, s), resample=Image.BILINEAR)
    u8 = np.repeat(np.array(g)[..., None], 3, axis=-1)
    t = T.Normalize((0.2860,), (0.3530,))(T.ToTensor()(g)).repeat(3, 1, 1)
    return u8, t.numpy()


NORM = {
    "google": ([0.5] * 3, [0.5] * 3),
    "deit": ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
    "miil": ([0.0] * 3, [1.0] * 3),
    "cifar": ([0.5] * 3, [0.5] * 3),
    "fmnist": ([0.2860] * 3, [0.3530] * 3),
}
PRESETS = {"google": google, "deit": deit, "miil": miil, "cifar": cifar, "fmnist": fmnist}
# (preset, size, images or None for all, stored as u8)
CASES = [
    ("google", 32, None, False),
    ("deit", 32, None, False),
    ("miil", 32, None, False),
    ("cifar", 32, None, False),
    ("fmnist", 28, None, False),
    ("deit", 48, ["gray_300x200.png", "pal_500x375.png", "rgb_17x23.png", "rgb_7x5.png"], False),
    ("miil", 48, ["gray_300x200.png", "pal_500x375.png", "rgb_17x23.png", "rgb_7x5.png"], False),
    ("google", 224, ["pal_500x375.png"], True),
    ("deit", 224, ["gray_300x200.png"], True),
    ("miil", 224, ["pal_500x375.png"], True),
    ("cifar", 224, ["rgb_17x23.png"], True),
]


def main():
    os.makedirs(OUT, exist_ok=True)
    print("PIL", PIL.__version__, "numpy", np.__version__, "torch", torch.__version__)
    imgs = make_images()
    tensors = {}
    for preset, size, names, as_u8 in CASES:
        for name in names or sorted(imgs):
            u8, f = PRESETS[preset](imgs[name], size)
            assert f.shape == (3, size, size) and f.dtype == np.float32, (preset, name, f.shape, f.dtype)
            key = f"{preset}/{size}/{name}"
            if as_u8:
                u8 = np.ascontiguousarray(u8.transpose(2, 0, 1))
                # Normalising the stored pixels must give the float pipeline back.
                mean, std = NORM[preset]
                m = np.array(mean, np.float32)[:, None, None]
                sd = np.array(std, np.float32)[:, None, None]
                back = (u8.astype(np.float32) / 255 - m) / sd
                assert np.abs(back - f).max() < 1e-5, (key, np.abs(back - f).max())
                tensors[key] = u8
            else:
                tensors[key] = f
    tensors["decoded/photo_64x48.jpg"] = np.array(imgs["photo_64x48.jpg"].convert("RGB"))
    # Odd sizes and every chroma subsampling PIL can write (4:4:4, 4:2:2,
    # 4:2:0), to pin down the edges of libjpeg's chroma upsampling.
    for sub, tag in [(0, "444"), (1, "422"), (2, "420")]:
        name = f"photo_37x29_{tag}.jpg"
        path = os.path.join(OUT, name)
        Image.fromarray(pattern(37, 29, 11), "RGB").save(path, quality=85, subsampling=sub)
        tensors["decoded/" + name] = np.array(Image.open(path).convert("RGB"))
    # WebP: lossy (limited-range YUV 4:2:0, odd and even sizes), lossy with
    # alpha, and lossless.
    webps = [
        ("lossy_37x29.webp", Image.fromarray(pattern(37, 29, 12), "RGB"), dict(quality=80)),
        ("lossy_38x30.webp", Image.fromarray(pattern(38, 30, 13), "RGB"), dict(quality=80)),
        ("lossy_alpha_21x18.webp", Image.fromarray(
            np.concatenate([pattern(21, 18, 14), pattern(21, 18, 15)[..., :1]], axis=-1), "RGBA"), dict(quality=80)),
        ("lossless_20x15.webp", Image.fromarray(pattern(20, 15, 16), "RGB"), dict(lossless=True)),
    ]
    for name, im, opts in webps:
        path = os.path.join(OUT, name)
        im.save(path, "WEBP", **opts)
        tensors["decoded/" + name] = np.array(Image.open(path).convert("RGB"))
    path = os.path.join(OUT, "golden.safetensors")
    safetensors_io.save(path, tensors, {"pil": PIL.__version__, "generator": "tools/reference/make_preprocess_golden.py"})
    total = sum(os.path.getsize(os.path.join(OUT, f)) for f in os.listdir(OUT))
    print(f"wrote {len(tensors)} tensors; testdata/preprocess is {total / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
