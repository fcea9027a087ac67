#!/usr/bin/python3
"""Export torchvision's ViT-B/16 and ViT-B/32 (random weights, seed 0) to ONNX for
compare_torch.py's ONNX Runtime peer: tools/bench/models/vit_b_16.onnx and vit_b_32.onnx,
with a dynamic batch axis. Speed does not depend on the weights.

Run from the repository root:  /usr/bin/python3 tools/bench/export_onnx.py
Needs Debian's python3-torch and python3-torchvision (torch.onnx needs no onnx package).
"""
import os

import torch
import torchvision

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "models")

# name: (patch size) of the ViT-Base models compared
MODELS = {"vit_b_16": 16, "vit_b_32": 32}


def vit_base(patch):
    return torchvision.models.VisionTransformer(
        image_size=224, patch_size=patch, num_layers=12, num_heads=12,
        hidden_dim=768, mlp_dim=3072, num_classes=1000).eval()


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, patch in MODELS.items():
        torch.manual_seed(0)
        model = vit_base(patch)
        path = os.path.join(OUT, name + ".onnx")
        # Outside torch.no_grad(): the fused attention fast path taken under
        # no_grad cannot be exported.
        torch.onnx.export(model, torch.randn(1, 3, 224, 224), path, opset_version=17,
                          input_names=["pixels"], output_names=["logits"],
                          dynamic_axes={"pixels": {0: "batch"}, "logits": {0: "batch"}})
        print("wrote", path)


if __name__ == "__main__":
    main()
