"""Writes the PyTorch fixtures of vitlens/vit/checkpoint's tests.

Run by hand from the repository root with Debian's interpreter:
    /usr/bin/python3 tools/reference/make_pth_fixtures.py
Outputs go to vit/checkpoint/testdata/.
(python3-torch 1.13, python3-torchvision 0.14). A tiny random torchvision
ViT (image 8, patch 4, 2 layers, 2 heads, dim 16, MLP 32, 3 classes) is saved:
  tv_tiny.safetensors   torchvision names, float32, written by hand below:
                        the values every .pth here must load to
  timm_wrapped.pth      timm names with a "module." prefix, nested as
                        {'model': sd, 'epoch', 'args': Namespace, 'optimizer'}
  tv_legacy.pth         torchvision names, bare, pre-1.6 (non-zip) format
  tv_half_strided.pth   torchvision names in float16, with one transposed
                        (non-contiguous) view saved as such
  fuzz_tiny*.pth        a 4-dim, 1-layer model (zip and legacy): fuzzing seeds
"""
import argparse, collections, json, os, struct
import torch, torchvision

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "vit", "checkpoint", "testdata")
torch.manual_seed(0)
m = torchvision.models.VisionTransformer(image_size=8, patch_size=4, num_layers=2, num_heads=2,
                                         hidden_dim=16, mlp_dim=32, num_classes=3)
torch.nn.init.normal_(m.heads.head.weight, std=0.1)  # torchvision zero-initialises it
for p in m.parameters():  # LayerNorm (1, 0) and zero biases would hide mix-ups
    with torch.no_grad():
        p.add_(torch.randn_like(p) * 0.05)
sd = {k: v.detach().clone() for k, v in m.state_dict().items()}


def save_safetensors(path, tensors):
    header, blobs, off = {}, [], 0
    for k in sorted(tensors):
        b = tensors[k].contiguous().float().numpy().tobytes()
        header[k] = {"dtype": "F32", "shape": list(tensors[k].shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


save_safetensors(os.path.join(out, "tv_tiny.safetensors"), sd)

to_timm = [("conv_proj", "patch_embed.proj"), ("class_token", "cls_token"),
           ("encoder.pos_embedding", "pos_embed"), ("encoder.ln.", "norm."), ("heads.head", "head"),
           ("encoder.layers.encoder_layer_", "blocks."), ("ln_1", "norm1"), ("ln_2", "norm2"),
           ("self_attention.in_proj_weight", "attn.qkv.weight"),
           ("self_attention.in_proj_bias", "attn.qkv.bias"), ("self_attention.out_proj", "attn.proj"),
           ("mlp.0", "mlp.fc1"), ("mlp.3", "mlp.fc2")]
timm = collections.OrderedDict()
for k, v in sd.items():
    for a, b in to_timm:
        k = k.replace(a, b)
    timm["module." + k] = v
torch.save({"model": timm, "epoch": 3, "args": argparse.Namespace(lr=0.1, model="vit"),
            "optimizer": {"state": {0: {"step": torch.tensor(5)}}, "param_groups": [{"lr": 0.1}]}},
           os.path.join(out, "timm_wrapped.pth"))

torch.save(collections.OrderedDict(sd), os.path.join(out, "tv_legacy.pth"),
           _use_new_zipfile_serialization=False)

half = collections.OrderedDict((k, v.half()) for k, v in sd.items())
w = "encoder.layers.encoder_layer_0.mlp.0.weight"
half[w] = half[w].t().contiguous().t()  # same values, column-major storage
assert not half[w].is_contiguous()
torch.save(half, os.path.join(out, "tv_half_strided.pth"))

# Fuzzing seeds: the same formats at the smallest size, since the fuzzer
# mutates (and minimises) small inputs far faster.
torch.manual_seed(1)
f = torchvision.models.VisionTransformer(image_size=4, patch_size=2, num_layers=1, num_heads=1,
                                         hidden_dim=4, mlp_dim=4, num_classes=2)
fsd = collections.OrderedDict((k, v.detach().clone()) for k, v in f.state_dict().items())
torch.save({"model": fsd, "args": argparse.Namespace(lr=0.1)}, os.path.join(out, "fuzz_tiny.pth"))
torch.save(fsd, os.path.join(out, "fuzz_tiny_legacy.pth"), _use_new_zipfile_serialization=False)
