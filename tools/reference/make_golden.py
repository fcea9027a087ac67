#!/usr/bin/python3
"""Golden tensors for vitlens' Go forward pass, lens and interventions.

Every fixture is a small random-weight ViT built with torchvision (or, for the
post-norm GAP variant, a short explicit torch module), saved in every checkpoint
family that can express it, plus golden.safetensors with the activations the
Go side must reproduce. See tools/README.md for the tensor naming.

Run from the repository root:
  /usr/bin/python3 tools/reference/make_golden.py            # all fixtures
  /usr/bin/python3 tools/reference/make_golden.py tiny gap   # some of them
Writes testdata/reference/<fixture>/.
"""

import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
import safetensors_io  # noqa: E402
import splitmix  # noqa: E402
import vitnames  # noqa: E402

OUT = os.path.join(ROOT, "testdata", "reference")
SCRIPT = "tools/reference/make_golden.py"
TOL = 1e-5
N_INPUTS = 2

CONFIGS = {
    "tiny": dict(image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=16, mlp_dim=40,
                 num_classes=7),
    "odd": dict(image_size=36, patch_size=6, num_layers=3, num_heads=3, hidden_dim=24, mlp_dim=50,
                num_classes=11),
    "b16": dict(image_size=224, patch_size=16, num_layers=12, num_heads=12, hidden_dim=768,
                mlp_dim=3072, num_classes=1000),
}
SEEDS = {"tiny": 1, "odd": 2, "nobias": 3, "gap": 4, "b16": 5}


def vit_config(c, qkv_bias=True, class_token=True, pool="cls", post_norm=False):
    return vitnames.config_json(c["image_size"], c["patch_size"], c["num_layers"], c["num_heads"],
                                c["hidden_dim"], c["mlp_dim"], c["num_classes"], qkv_bias=qkv_bias,
                                class_token=class_token, pool=pool, post_norm=post_norm)


def close(name, got, want, tol=TOL, scaled=False):
    """Max abs difference, checked against tol; scaled=True multiplies tol by
    max(1, max|want|) for hidden states whose magnitude grows with depth."""
    err = (got - want).abs().max().item()
    limit = tol * max(1.0, want.abs().max().item()) if scaled else tol
    if not err <= limit:
        raise AssertionError(f"{name}: manual forward differs from torch by {err:.3g} (> {limit:.3g})")
    return err


# ---------------------------------------------------------------------------
# Random weights that make mistakes visible: torchvision zero-initialises the
# head, the class token and most biases, and sets LayerNorms to (1, 0); any of
# those would hide a wrong bias, a missing affine or a misplaced [CLS].

def randomise(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            r = torch.randn(p.shape, generator=g)
            if ".ln" in name or name.startswith("encoder.ln") or "norm" in name:
                p.copy_(1 + 0.1 * r if name.endswith("weight") else 0.1 * r)
            elif name.endswith("bias"):
                p.copy_(0.1 * r)
            elif name in ("class_token", "encoder.pos_embedding", "cls_token", "pos_embed"):
                p.copy_(0.5 * r)
            elif "head" in name:
                p.copy_(r / math.sqrt(p.shape[1]))
            elif "in_proj_weight" in name or "qkv" in name:
                # Larger q/k weights give peaked attention, so edits to it change the output.
                p.copy_(2.0 * r / math.sqrt(p.shape[1]))
            elif p.ndim >= 2:
                fan_in = p[0].numel()
                p.copy_(r / math.sqrt(fan_in))
            else:
                raise ValueError(f"unhandled parameter {name}")


def inputs(c, seed, n=N_INPUTS):
    g = torch.Generator().manual_seed(1000 + seed)
    return torch.randn(n, 3, c["image_size"], c["image_size"], generator=g)


# ---------------------------------------------------------------------------
# Manual forward of a torchvision ViT with taps and attention edits.

def edit_attention(a, edit):
    """a: (B, H, N, N) post-softmax. Rows t >= 1 are image-token queries."""
    if edit is None:
        return a
    a = a.clone()
    n = a.shape[-1]
    if edit == "self_only":
        a[:, :, 1:, :] = 0
        idx = torch.arange(1, n)
        a[:, :, idx, idx] = 1
    elif edit == "no_cls":
        a[:, :, 1:, 0] = 0  # deliberately not renormalised (as in the paper's code)
    else:
        raise ValueError(edit)
    return a


def manual_forward(m, x, edit=None, keep=None):
    """Returns (logits, taps) where taps[site][b] is (B, ...) for every block."""
    heads = m.encoder.layers[0].self_attention.num_heads
    b_sz = x.shape[0]
    h = m._process_input(x)
    h = torch.cat([m.class_token.expand(b_sz, -1, -1), h], dim=1) + m.encoder.pos_embedding
    if keep is not None:
        h = h[:, keep]
    taps = {k: [] for k in ("hs", "hs_mid", "attn", "mlp", "attn_probs", "values", "fc1")}
    taps["embed"] = h
    for layer in m.encoder.layers:
        sa = layer.self_attention
        d = h.shape[-1]
        dh = d // heads
        y = layer.ln_1(h)
        qkv = F.linear(y, sa.in_proj_weight, sa.in_proj_bias)
        q, k, v = (t.reshape(b_sz, -1, heads, dh).transpose(1, 2) for t in qkv.split(d, dim=-1))
        a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(dh), dim=-1)
        a = edit_attention(a, edit)
        o = (a @ v).transpose(1, 2).reshape(b_sz, -1, d)
        attn = sa.out_proj(o)
        mid = h + attn
        f1 = layer.mlp[0](layer.ln_2(mid))
        mlp = layer.mlp[3](F.gelu(f1))
        h = mid + mlp
        for site, val in (("hs", h), ("hs_mid", mid), ("attn", attn), ("mlp", mlp),
                          ("attn_probs", a), ("values", v), ("fc1", f1)):
            taps[site].append(val)
    logits = m.heads(m.encoder.ln(h)[:, 0])
    return logits, taps


def hooked_forward(m, x):
    """torchvision's own modules, tapped with hooks: the primary source of taps."""
    depth = len(m.encoder.layers)
    taps = {k: [None] * depth for k in ("hs", "hs_mid", "attn", "mlp", "fc1", "ln1")}
    hooks = [m.encoder.layers.register_forward_pre_hook(
        lambda mod, inp: taps.__setitem__("embed", inp[0]))]
    for b, layer in enumerate(m.encoder.layers):
        def put(site, b=b):
            return lambda mod, inp, out: taps[site].__setitem__(b, out)
        hooks += [
            layer.register_forward_hook(put("hs")),
            layer.ln_2.register_forward_pre_hook(
                lambda mod, inp, b=b: taps["hs_mid"].__setitem__(b, inp[0])),
            layer.self_attention.register_forward_hook(
                lambda mod, inp, out, b=b: taps["attn"].__setitem__(b, out[0])),
            layer.mlp.register_forward_hook(put("mlp")),
            layer.mlp[0].register_forward_hook(put("fc1")),
            layer.ln_1.register_forward_hook(put("ln1")),
        ]
    try:
        logits = m(x)
    finally:
        for hk in hooks:
            hk.remove()
    # Per-head probabilities from torch's own MultiheadAttention.
    taps["attn_probs"] = []
    for b, layer in enumerate(m.encoder.layers):
        y = taps["ln1"][b]
        _, probs = layer.self_attention(y, y, y, need_weights=True, average_attn_weights=False)
        taps["attn_probs"].append(probs)
    return logits, taps


def lens(m, v):
    return m.heads(m.encoder.ln(v))


@torch.no_grad()
def torchvision_golden(name, m, c, seed):
    x = inputs(c, seed)
    depth = c["num_layers"]
    logits, taps = hooked_forward(m, x)
    mlogits, mtaps = manual_forward(m, x)
    errs = {"logits": close(f"{name} logits", mlogits, logits)}
    for site in ("embed",):
        errs[site] = close(f"{name} {site}", mtaps[site], taps[site])
    for site in ("hs", "hs_mid", "attn", "mlp", "fc1", "attn_probs"):
        for b in range(depth):
            errs[site] = max(errs.get(site, 0), close(f"{name} {site}.{b}", mtaps[site][b], taps[site][b],
                                                             scaled=True))
    out = {}
    g = torch.Generator().manual_seed(2000 + seed)
    n_tok = mtaps["embed"].shape[1]
    for i in range(x.shape[0]):
        out[f"input.{i}"] = x[i]
        out[f"logits.{i}"] = logits[i]
        out[f"embed.{i}"] = taps["embed"][i]
        for b in range(depth):
            for site in ("hs", "hs_mid", "attn", "mlp", "fc1", "attn_probs"):
                out[f"{site}.{b}.{i}"] = taps[site][b][i]
            out[f"values.{b}.{i}"] = mtaps["values"][b][i]
            for site in ("hs", "hs_mid", "attn", "mlp"):
                out[f"lens.{site}.{b}.{i}"] = lens(m, taps[site][b][i])
        close(f"{name} lens of the last CLS vs logits", out[f"lens.hs.{depth - 1}.{i}"][0], logits[i])
        # Interventions, one image at a time (keep differs per image).
        xi = x[i:i + 1]
        for edit in ("self_only", "no_cls"):
            el, et = manual_forward(m, xi, edit=edit)
            out[f"{edit}.logits.{i}"] = el[0]
            out[f"{edit}.hs.{depth - 1}.{i}"] = et["hs"][-1][0]
        patches = torch.randperm(n_tok - 1, generator=g)[: (n_tok - 1) // 2] + 1
        keep = torch.cat([torch.zeros(1, dtype=torch.int64), patches.sort().values])
        kl, kt = manual_forward(m, xi, keep=keep)
        out[f"keep.tokens.{i}"] = keep
        out[f"keep.logits.{i}"] = kl[0]
        out[f"keep.hs.{depth - 1}.{i}"] = kt["hs"][-1][0]
        # The edits must actually change something, or the fixture tests nothing.
        for edit in ("self_only", "no_cls"):
            d = (out[f"{edit}.logits.{i}"] - logits[i]).abs().max().item()
            assert d > 1e-3, f"{name}: {edit} leaves the logits unchanged ({d})"
    return out, errs


def save_torchvision_family(name, m, c):
    d = os.path.join(OUT, name)
    os.makedirs(os.path.join(d, "hf"), exist_ok=True)
    sd = m.state_dict()
    torch.save(sd, os.path.join(d, "torchvision.pth"))
    safetensors_io.save(os.path.join(d, "torchvision.safetensors"), sd, {"format": "pt"})
    safetensors_io.save(os.path.join(d, "timm.safetensors"), vitnames.torchvision_to_timm(sd),
                        {"format": "pt"})
    safetensors_io.save(os.path.join(d, "hf", "model.safetensors"),
                        vitnames.torchvision_to_hf(sd, c["num_layers"], c["hidden_dim"]),
                        {"format": "pt"})
    cfg = vitnames.hf_config(c["image_size"], c["patch_size"], c["num_layers"], c["num_heads"],
                             c["hidden_dim"], c["mlp_dim"], c["num_classes"])
    with open(os.path.join(d, "hf", "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")


def check_reload(name, m, c):
    """The written files must give back the same model (guards the name tables)."""
    d = os.path.join(OUT, name)
    x = inputs(c, 0, 1)
    want = m(x)
    for fname in ("torchvision.pth", "torchvision.safetensors", "timm.safetensors"):
        p = os.path.join(d, fname)
        if not os.path.exists(p):
            continue
        if fname.endswith(".pth"):
            sd = torch.load(p)
        else:
            t, _ = safetensors_io.load(p)
            sd = {k: torch.from_numpy(v) for k, v in t.items()}
            if fname.startswith("timm"):
                if "blocks.0.attn.qkv.bias" not in sd:  # qkv_bias=False: torchvision needs zeros
                    for i in range(c["num_layers"]):
                        sd[f"blocks.{i}.attn.qkv.bias"] = torch.zeros(3 * c["hidden_dim"])
                sd = vitnames.timm_to_torchvision(sd, m.state_dict().keys())
        m2 = torchvision.models.VisionTransformer(**c)
        m2.load_state_dict(sd)
        m2.eval()
        close(f"{name} reload {fname}", m2(x), want, 0)


def write_golden(name, out, meta):
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    meta = dict(meta, script=SCRIPT, fixture=name, inputs=str(N_INPUTS) if name != "b16" else "1")
    safetensors_io.save(os.path.join(d, "golden.safetensors"), out, meta)


@torch.no_grad()
def make_cls_fixture(name, nobias=False):
    c = CONFIGS["tiny" if nobias else name]
    torch.manual_seed(SEEDS[name])
    m = torchvision.models.VisionTransformer(**c)
    randomise(m, SEEDS[name])
    if nobias:
        for layer in m.encoder.layers:
            layer.self_attention.in_proj_bias.zero_()
    m.eval()
    out, errs = torchvision_golden(name, m, c, SEEDS[name])
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    if nobias:
        # timm's qkv_bias=False models (vit_base_patch16_224_miil) have no attn.qkv.bias keys.
        safetensors_io.save(os.path.join(d, "timm.safetensors"),
                            vitnames.torchvision_to_timm(m.state_dict(), drop_qkv_bias=True),
                            {"format": "pt"})
    else:
        save_torchvision_family(name, m, c)
    check_reload(name, m, c)
    write_golden(name, out, {
        "config": vit_config(c, qkv_bias=not nobias),
        "max_abs_err_manual_vs_torch": json.dumps({k: float(f"{v:.3g}") for k, v in errs.items()}),
        "weights": "random, torch seed %d; see randomise() in the script" % SEEDS[name],
    })
    return errs


# ---------------------------------------------------------------------------
# timm's ResPostBlock GAP model (vit_base_patch16_rpn_224), written out.

class GapViT(nn.Module):
    def __init__(self, image_size, patch_size, num_layers, num_heads, hidden_dim, mlp_dim,
                 num_classes):
        super().__init__()
        self.heads_n = num_heads
        self.patch = patch_size
        n = (image_size // patch_size) ** 2
        self.patch_embed = nn.Conv2d(3, hidden_dim, patch_size, patch_size)
        self.pos_embed = nn.Parameter(torch.zeros(1, n, hidden_dim))
        self.blocks = nn.ModuleList()
        for _ in range(num_layers):
            blk = nn.Module()
            blk.norm1 = nn.LayerNorm(hidden_dim, eps=1e-6)
            blk.qkv = nn.Linear(hidden_dim, 3 * hidden_dim, bias=False)
            blk.proj = nn.Linear(hidden_dim, hidden_dim)
            blk.norm2 = nn.LayerNorm(hidden_dim, eps=1e-6)
            blk.fc1 = nn.Linear(hidden_dim, mlp_dim)
            blk.fc2 = nn.Linear(mlp_dim, hidden_dim)
            self.blocks.append(blk)
        self.fc_norm = nn.LayerNorm(hidden_dim, eps=1e-6)
        self.head = nn.Linear(hidden_dim, num_classes)

    def timm_state_dict(self):
        sd = {"patch_embed.proj.weight": self.patch_embed.weight,
              "patch_embed.proj.bias": self.patch_embed.bias, "pos_embed": self.pos_embed}
        for i, blk in enumerate(self.blocks):
            for mod, tn in (("norm1", "norm1"), ("qkv", "attn.qkv"), ("proj", "attn.proj"),
                            ("norm2", "norm2"), ("fc1", "mlp.fc1"), ("fc2", "mlp.fc2")):
                for pn, p in getattr(blk, mod).named_parameters():
                    sd[f"blocks.{i}.{tn}.{pn}"] = p
        for pn, p in self.fc_norm.named_parameters():
            sd["fc_norm." + pn] = p
        for pn, p in self.head.named_parameters():
            sd["head." + pn] = p
        return {k: v.detach().clone() for k, v in sd.items()}

    def forward(self, x, taps=None):
        b_sz = x.shape[0]
        h = self.patch_embed(x).flatten(2).transpose(1, 2) + self.pos_embed
        if taps is not None:
            taps["embed"] = h
        for blk in self.blocks:
            d = h.shape[-1]
            dh = d // self.heads_n
            q, k, v = (t.reshape(b_sz, -1, self.heads_n, dh).transpose(1, 2)
                       for t in blk.qkv(h).split(d, dim=-1))
            a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(dh), dim=-1)
            attn = blk.norm1(blk.proj((a @ v).transpose(1, 2).reshape(b_sz, -1, d)))
            mid = h + attn
            f1 = blk.fc1(mid)
            mlp = blk.norm2(blk.fc2(F.gelu(f1)))
            h = mid + mlp
            if taps is not None:
                for site, val in (("hs", h), ("hs_mid", mid), ("attn", attn), ("mlp", mlp),
                                  ("attn_probs", a), ("values", v), ("fc1", f1)):
                    taps.setdefault(site, []).append(val)
        return self.head(self.fc_norm(h.mean(dim=1)))


def gap_via_mha(m, x):
    """An independent forward of the same weights through nn.MultiheadAttention,
    to check GapViT's hand-written attention."""
    d = m.pos_embed.shape[-1]
    h = m.patch_embed(x).flatten(2).transpose(1, 2) + m.pos_embed
    for blk in m.blocks:
        # bias=True with a zero in_proj_bias: torch 1.13's fast path crashes on bias=False.
        mha = nn.MultiheadAttention(d, m.heads_n, batch_first=True)
        mha.in_proj_weight.copy_(blk.qkv.weight)
        mha.in_proj_bias.zero_()
        mha.out_proj.weight.copy_(blk.proj.weight)
        mha.out_proj.bias.copy_(blk.proj.bias)
        mha.eval()
        o, _ = mha(h, h, h, need_weights=False)
        h = h + blk.norm1(o)
        h = h + blk.norm2(blk.fc2(F.gelu(blk.fc1(h))))
    return m.head(m.fc_norm(h.mean(dim=1)))


@torch.no_grad()
def make_gap():
    name = "gap"
    c = CONFIGS["tiny"]
    torch.manual_seed(SEEDS[name])
    m = GapViT(**c)
    randomise(m, SEEDS[name])
    m.eval()
    x = inputs(c, SEEDS[name])
    taps = {}
    logits = m(x, taps)
    errs = {"logits": close("gap logits vs MultiheadAttention", logits, gap_via_mha(m, x))}
    out = {}
    for i in range(x.shape[0]):
        out[f"input.{i}"] = x[i]
        out[f"logits.{i}"] = logits[i]
        out[f"embed.{i}"] = taps["embed"][i]
        for b in range(c["num_layers"]):
            for site in ("hs", "hs_mid", "attn", "mlp", "fc1", "attn_probs", "values"):
                out[f"{site}.{b}.{i}"] = taps[site][b][i]
            for site in ("hs", "hs_mid", "attn", "mlp"):
                out[f"lens.{site}.{b}.{i}"] = m.head(m.fc_norm(taps[site][b][i]))
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    safetensors_io.save(os.path.join(d, "timm.safetensors"), m.timm_state_dict(), {"format": "pt"})
    # Reload check: the timm file must rebuild the same model.
    t, _ = safetensors_io.load(os.path.join(d, "timm.safetensors"))
    m2 = GapViT(**c)
    m2.load_state_dict(_gap_torch_names(t))
    m2.eval()
    close("gap reload timm.safetensors", m2(x), logits, 0)
    write_golden(name, out, {
        "config": vit_config(c, qkv_bias=False, class_token=False, pool="mean", post_norm=True),
        "max_abs_err_manual_vs_torch": json.dumps({k: float(f"{v:.3g}") for k, v in errs.items()}),
        "weights": "random, torch seed %d; see randomise() in the script" % SEEDS[name],
        "note": "post-norm (ResPostBlock): attn/mlp taps are norm1/norm2 of the sublayer output; "
                "values come from the block input (no LN before attention, no qkv bias)",
    })
    return errs


def _gap_torch_names(t):
    out = {}
    for k, v in t.items():
        k2 = (k.replace("patch_embed.proj", "patch_embed").replace("attn.qkv", "qkv")
              .replace("attn.proj", "proj").replace("mlp.fc1", "fc1").replace("mlp.fc2", "fc2"))
        out[k2] = torch.from_numpy(v)
    return out


# ---------------------------------------------------------------------------
# B/16 with splitmix weights: only the golden is committed.

@torch.no_grad()
def make_b16():
    name = "b16"
    c = CONFIGS[name]
    w = splitmix.tensors(image_size=224, patch_size=16, depth=12, dim=768, mlp_dim=3072,
                         classes=1000)
    m = torchvision.models.VisionTransformer(**c)
    sd = vitnames.timm_to_torchvision({k: torch.from_numpy(v) for k, v in w.items()},
                                      m.state_dict().keys())
    m.load_state_dict(sd)
    m.eval()
    g = torch.Generator().manual_seed(SEEDS[name])
    x = torch.randn(1, 3, 224, 224, generator=g)
    logits, taps = hooked_forward(m, x)
    out = {"input.0": x[0], "logits.0": logits[0], "hs.11.0": taps["hs"][11][0],
           "hs.5.0": taps["hs"][5][0]}
    some = {k: float(w[k].ravel()[j]) for k, j in (("cls_token", 0), ("blocks.11.mlp.fc1.weight", 2359295))}
    write_golden(name, out, {
        "config": vit_config(c),
        "weights": "splitmix: tools/reference/splitmix.py == vit/vittest.SplitmixTensors",
        "input": f"torch.randn(1,3,224,224) with torch.Generator seed {SEEDS[name]}",
        "sample_weights": json.dumps(some),
    })
    return {}


def main():
    torch.set_num_threads(int(os.environ.get("THREADS", "2")))
    names = sys.argv[1:] or ["tiny", "odd", "nobias", "gap", "b16"]
    for name in names:
        if name in ("tiny", "odd"):
            errs = make_cls_fixture(name)
        elif name == "nobias":
            errs = make_cls_fixture(name, nobias=True)
        elif name == "gap":
            errs = make_gap()
        elif name == "b16":
            errs = make_b16()
        else:
            raise SystemExit(f"unknown fixture {name}")
        d = os.path.join(OUT, name)
        size = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(d) for f in fs)
        print(f"{name}: {size / 1024:.0f} KiB; max |manual - torch| {errs}")


if __name__ == "__main__":
    main()
