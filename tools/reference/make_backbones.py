#!/usr/bin/python3
"""Golden tensors for the ViTs researchers use today (issue 11): distilled DeiT,
LayerScale with register tokens and the no_embed_class position embedding.

timm is not installed here, so TimmViT below is a short, explicit re-writing of
timm's VisionTransformer / VisionTransformerDistilled forward for these
variants (same parameter names, so its state_dict is a timm checkpoint). Its
attention is hand-written to expose taps; every fixture's logits are checked
against a second forward of the same weights through torch's
nn.MultiheadAttention (independent_logits).

The golden file has the keys vit/parity_test.go's checkFixture reads (see
make_golden.py): logits, embed, every site's taps, attention edits, a token
selection, and the lens (final norm, then the class embedding) of every tap.

Run from the repository root:
  /usr/bin/python3 tools/reference/make_backbones.py            # all fixtures
  /usr/bin/python3 tools/reference/make_backbones.py deit_dist  # one
Writes testdata/reference/<fixture>/{timm.safetensors,golden.safetensors}, and
for dinov2 and clip the same weights under Hugging Face's names (hf/, see
hf_dinov2 and hf_clip; vitnames.py holds the name tables).
"""

import json
import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_golden  # noqa: E402  (shared: close, randomise, inputs, edit_attention, write_golden)
import safetensors_io  # noqa: E402
import vitnames  # noqa: E402

TINY = dict(image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=16, mlp_dim=40,
            num_classes=7)

# fixture -> (seed, TimmViT options)
FIXTURES = {
    "deit_dist": (11, dict(distilled=True)),  # also run at 24px (grid 4 -> 3, shrinking)
    # DINOv2-with-registers layout: LayerScale, 2 registers, no_embed_class.
    "ls_reg": (12, dict(layer_scale=True, registers=2, no_embed_class=True)),  # also at 48px (4 -> 6)
    # OpenAI-CLIP-style image tower: norm_pre, QuickGELU, a bias-free projection
    # head to a 12-wide embedding, read through a class head file (5 classes).
    "clip": (13, dict(norm_pre=True, act="quick_gelu", embed_dim=12, head_bias=False)),
    # DINOv2's layout (LayerScale, position rows for [CLS] too), also written under
    # Hugging Face Dinov2Model's names (hf/), which has no classifier.
    "dinov2": (14, dict(layer_scale=True)),
}
RESIZE = {"deit_dist": 24, "ls_reg": 48}  # image size for the position-embedding interpolation check
HEAD_CLASSES = ["cat", "dog", "car", "tree", "cup"]  # the clip fixture's head file

ACTS = {
    "gelu": F.gelu,
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "quick_gelu": lambda x: x * torch.sigmoid(1.702 * x),  # OpenAI CLIP's QuickGELU
}


class TimmViT(nn.Module):
    """timm's VisionTransformer for the variants above, parameters under timm's names."""

    def __init__(self, image_size, patch_size, num_layers, num_heads, hidden_dim, mlp_dim,
                 num_classes, distilled=False, registers=0, layer_scale=False,
                 no_embed_class=False, norm_pre=False, act="gelu", embed_dim=None, head_bias=True):
        super().__init__()
        d = hidden_dim
        self.heads = num_heads
        self.no_embed_class = no_embed_class
        self.act = ACTS[act]
        n_patches = (image_size // patch_size) ** 2
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv2d(3, d, patch_size, patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.dist_token = nn.Parameter(torch.zeros(1, 1, d)) if distilled else None
        self.reg_token = nn.Parameter(torch.zeros(1, registers, d)) if registers else None
        prefix = 1 + int(distilled) + registers
        self.prefix = prefix
        self.pos_embed = nn.Parameter(torch.zeros(1, n_patches + (0 if no_embed_class else prefix), d))
        self.norm_pre = nn.LayerNorm(d, eps=1e-6) if norm_pre else None
        self.blocks = nn.ModuleList()
        for _ in range(num_layers):
            b = nn.Module()
            b.norm1 = nn.LayerNorm(d, eps=1e-6)
            b.attn = nn.Module()
            b.attn.qkv = nn.Linear(d, 3 * d)
            b.attn.proj = nn.Linear(d, d)
            b.norm2 = nn.LayerNorm(d, eps=1e-6)
            b.mlp = nn.Module()
            b.mlp.fc1 = nn.Linear(d, mlp_dim)
            b.mlp.fc2 = nn.Linear(mlp_dim, d)
            if layer_scale:
                b.ls1, b.ls2 = nn.Module(), nn.Module()
                b.ls1.gamma = nn.Parameter(torch.ones(d))
                b.ls2.gamma = nn.Parameter(torch.ones(d))
            self.blocks.append(b)
        self.norm = nn.LayerNorm(d, eps=1e-6)
        # A CLIP tower's head is its projection to the embedding (no bias).
        self.head = nn.Linear(d, embed_dim or num_classes, bias=head_bias)
        self.head_dist = nn.Linear(d, num_classes) if distilled else None

    def prefix_tokens(self, b_sz):
        toks = [self.cls_token, self.dist_token, self.reg_token]
        return [t.expand(b_sz, -1, -1) for t in toks if t is not None]

    def embed(self, x):
        """timm's _pos_embed: position embeddings over every token, or (no_embed_class)
        over the patches only, with [CLS], distillation token and registers prepended after."""
        h = self.patch_embed.proj(x).flatten(2).transpose(1, 2)
        if self.no_embed_class:
            h = torch.cat(self.prefix_tokens(h.shape[0]) + [h + self.pos_embed], dim=1)
        else:
            h = torch.cat(self.prefix_tokens(h.shape[0]) + [h], dim=1) + self.pos_embed
        return self.norm_pre(h) if self.norm_pre is not None else h

    def classify(self, h):
        """timm's forward_head in eval mode: the mean of the two heads when distilled."""
        n = self.norm(h)
        if self.head_dist is not None:
            return (self.head(n[:, 0]) + self.head_dist(n[:, 1])) / 2
        return self.head(n[:, 0])

    def class_embedding(self, v):
        """The lens: final norm, then the class embedding (the two heads' mean when distilled)."""
        n = self.norm(v)
        if self.head_dist is not None:
            return (self.head(n) + self.head_dist(n)) / 2
        return self.head(n)

    def forward(self, x, edit=None, keep=None, taps=None):
        h = self.embed(x)
        if keep is not None:
            h = h[:, keep]
        if taps is not None:
            taps["embed"] = h
        b_sz = x.shape[0]
        for blk in self.blocks:
            d = h.shape[-1]
            dh = d // self.heads
            q, k, v = (t.reshape(b_sz, -1, self.heads, dh).transpose(1, 2)
                       for t in blk.attn.qkv(blk.norm1(h)).split(d, dim=-1))
            a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(dh), dim=-1)
            a = make_golden.edit_attention(a, edit)
            attn = blk.attn.proj((a @ v).transpose(1, 2).reshape(b_sz, -1, d))
            if hasattr(blk, "ls1"):
                attn = attn * blk.ls1.gamma
            mid = h + attn
            f1 = blk.mlp.fc1(blk.norm2(mid))
            mlp = blk.mlp.fc2(self.act(f1))
            if hasattr(blk, "ls2"):
                mlp = mlp * blk.ls2.gamma
            h = mid + mlp
            if taps is not None:
                for site, val in (("hs", h), ("hs_mid", mid), ("attn", attn), ("mlp", mlp),
                                  ("attn_probs", a), ("values", v), ("fc1", f1)):
                    taps.setdefault(site, []).append(val)
        return self.classify(h)

    def timm_state_dict(self):
        return {k: v.detach().clone() for k, v in self.state_dict().items()}


def resample_abs_pos_embed(posemb, new_size, num_prefix_tokens):
    """timm.layers.resample_abs_pos_embed (timm 0.9, defaults interpolation='bicubic',
    antialias=True): prefix rows untouched, the patch grid resized."""
    prefix, grid = posemb[:, :num_prefix_tokens], posemb[:, num_prefix_tokens:]
    old = int(math.sqrt(grid.shape[1]))
    d = grid.shape[-1]
    grid = grid.reshape(1, old, old, d).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=(new_size, new_size), mode="bicubic", antialias=True,
                         align_corners=False)
    grid = grid.permute(0, 2, 3, 1).reshape(1, -1, d)
    return torch.cat([prefix, grid], dim=1)


def resized(m, c, opts, size, seed, readout):
    """The model at another image size, as timm builds it from a checkpoint
    (img_size=size: pos_embed resampled at load). Returns golden entries."""
    c2 = dict(c, image_size=size)
    m2 = TimmViT(**c2, **opts)
    sd = m.timm_state_dict()
    n_prefix = 0 if m.no_embed_class else m.prefix
    sd["pos_embed"] = resample_abs_pos_embed(sd["pos_embed"], size // c["patch_size"], n_prefix)
    m2.load_state_dict(sd)
    m2.eval()
    x = make_golden.inputs(c2, seed, 1)
    return {f"resized.{size}.input.0": x[0], f"resized.{size}.logits.0": readout(m2(x))[0],
            f"resized.{size}.pos_embed": sd["pos_embed"][0]}


def independent_logits(m, x):
    """The same weights through nn.MultiheadAttention and plain torch ops."""
    h = m.embed(x)
    d = h.shape[-1]
    for blk in m.blocks:
        mha = nn.MultiheadAttention(d, m.heads, batch_first=True)
        mha.in_proj_weight.copy_(blk.attn.qkv.weight)
        mha.in_proj_bias.copy_(blk.attn.qkv.bias)
        mha.out_proj.weight.copy_(blk.attn.proj.weight)
        mha.out_proj.bias.copy_(blk.attn.proj.bias)
        mha.eval()
        y = blk.norm1(h)
        o, _ = mha(y, y, y, need_weights=False)
        g1 = blk.ls1.gamma if hasattr(blk, "ls1") else 1
        g2 = blk.ls2.gamma if hasattr(blk, "ls2") else 1
        h = h + g1 * o
        h = h + g2 * blk.mlp.fc2(m.act(blk.mlp.fc1(blk.norm2(h))))
    return m.classify(h)


def randomise(m, seed):
    """make_golden.randomise, then the tensors it does not know: the distillation
    and register tokens as [CLS] (0.5·randn), LayerScale gammas in [0.1, 0.6) per
    channel (DeiT-III/DINOv2 gammas are small and vary by channel)."""
    g = torch.Generator().manual_seed(seed + 500)
    known = [(n, p) for n, p in m.named_parameters() if not n.endswith(".gamma")]
    make_golden.randomise(_Params(known), seed)
    with torch.no_grad():
        for name, p in m.named_parameters():
            if name in ("dist_token", "reg_token"):
                p.copy_(0.5 * torch.randn(p.shape, generator=g))
            elif name.endswith(".gamma"):
                p.copy_(0.1 + 0.5 * torch.rand(p.shape, generator=g))


class _Params:
    """Presents (name, parameter) pairs to make_golden.randomise."""

    def __init__(self, pairs):
        self.pairs = pairs

    def named_parameters(self):
        return iter(self.pairs)


def hf_dinov2(m, c, opts, x, readout, taps):
    """hf/model.safetensors: the weights under HF Dinov2Model's names, whose
    output (no classifier) is the normed [CLS]: golden hf.pooled.<i>. And
    hf_classifier.safetensors, Dinov2ForImageClassification's names with a
    classifier over concat([CLS], mean of the patch tokens) (hf.classifier.logits.<i>),
    which vitlens refuses: its head reads two vectors, not one token."""
    d = os.path.join(make_golden.OUT, "dinov2", "hf")
    os.makedirs(d, exist_ok=True)
    sd = vitnames.timm_to_hf_dinov2(m.timm_state_dict(), c["num_layers"], c["hidden_dim"])
    safetensors_io.save(os.path.join(d, "model.safetensors"), sd, {"format": "pt"})
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump({"architectures": ["Dinov2Model"], "model_type": "dinov2", "hidden_size": c["hidden_dim"],
                   "num_hidden_layers": c["num_layers"], "num_attention_heads": c["num_heads"],
                   "mlp_ratio": c["mlp_dim"] / c["hidden_dim"], "image_size": c["image_size"],
                   "patch_size": c["patch_size"], "num_channels": 3, "hidden_act": "gelu",
                   "layer_norm_eps": 1e-6, "layerscale_value": 1.0, "use_swiglu_ffn": False}, f)
        f.write("\n")
    normed = m.norm(taps["hs"][-1])
    g = torch.Generator().manual_seed(4000)
    cls_w = torch.randn(c["num_classes"], 2 * c["hidden_dim"], generator=g) / math.sqrt(2 * c["hidden_dim"])
    cls_b = 0.1 * torch.randn(c["num_classes"], generator=g)
    clf = dict(sd, **{"classifier.weight": cls_w, "classifier.bias": cls_b})
    safetensors_io.save(os.path.join(make_golden.OUT, "dinov2", "hf_classifier.safetensors"), clf, {"format": "pt"})
    clf_logits = torch.cat([normed[:, 0], normed[:, 1:].mean(1)], dim=1) @ cls_w.T + cls_b
    out = {}
    for i in range(x.shape[0]):
        out[f"hf.pooled.{i}"] = normed[i, 0]
        out[f"hf.classifier.logits.{i}"] = clf_logits[i]
    return out


def hf_clip(m, c, opts, x, readout, taps):
    """hf/model.safetensors: the tower under HF CLIPVisionModelWithProjection's
    names. HF's patch embedding has no bias, so these weights drop it: golden
    hf.logits.<i> are the tower's with a zero patch bias, through the head file."""
    sd = m.timm_state_dict()
    sd.pop("patch_embed.proj.bias")
    m2 = TimmViT(**c, **opts)
    m2.load_state_dict(dict(sd, **{"patch_embed.proj.bias": torch.zeros(c["hidden_dim"])}))
    m2.eval()
    d = os.path.join(make_golden.OUT, "clip", "hf")
    os.makedirs(d, exist_ok=True)
    safetensors_io.save(os.path.join(d, "model.safetensors"),
                        vitnames.timm_to_hf_clip(sd, c["num_layers"], c["hidden_dim"]), {"format": "pt"})
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump({"architectures": ["CLIPVisionModelWithProjection"], "model_type": "clip_vision_model",
                   "hidden_size": c["hidden_dim"], "intermediate_size": c["mlp_dim"],
                   "num_hidden_layers": c["num_layers"], "num_attention_heads": c["num_heads"],
                   "image_size": c["image_size"], "patch_size": c["patch_size"], "num_channels": 3,
                   "hidden_act": "quick_gelu", "layer_norm_eps": 1e-6, "projection_dim": opts["embed_dim"]}, f)
        f.write("\n")
    logits = readout(m2(x))
    return {f"hf.logits.{i}": logits[i] for i in range(x.shape[0])}


HF_EXPORTS = {"dinov2": hf_dinov2, "clip": hf_clip}


def load_timm(name):
    """The fixture's TimmViT with the weights make() wrote, in eval mode, with its
    config and input seed (for the scripts that hook it: hooks, DLA)."""
    seed, opts = FIXTURES[name]
    m = TimmViT(**TINY, **opts)
    sd = safetensors_io.load(os.path.join(make_golden.OUT, name, "timm.safetensors"))[0]
    m.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in sd.items()})
    return m.eval(), TINY, seed


def config_json(c, opts):
    return json.dumps({
        "image_size": c["image_size"], "patch_size": c["patch_size"], "channels": 3,
        "dim": c["hidden_dim"], "depth": c["num_layers"], "heads": c["num_heads"],
        "mlp_dim": c["mlp_dim"], "classes": c["num_classes"], "qkv_bias": True, "ln_eps": 1e-6,
        "class_token": True, "pool": "cls", "post_norm": False,
        "dist_token": bool(opts.get("distilled")), "registers": opts.get("registers", 0),
        "norm_pre": bool(opts.get("norm_pre")),
        "act": "" if opts.get("act", "gelu") == "gelu" else opts["act"],
    })


@torch.no_grad()
def make(name):
    seed, opts = FIXTURES[name]
    c = TINY
    torch.manual_seed(seed)
    m = TimmViT(**c, **opts)
    randomise(m, seed)
    m.eval()
    x = make_golden.inputs(c, seed)
    # A CLIP tower's output is an embedding; the class head file maps it to classes,
    # and the golden logits and lens are read through both (Go: --head).
    head = None
    if opts.get("embed_dim"):
        hg = torch.Generator().manual_seed(3000 + seed)
        head = (torch.randn(len(HEAD_CLASSES), opts["embed_dim"], generator=hg) / math.sqrt(opts["embed_dim"]),
                0.1 * torch.randn(len(HEAD_CLASSES), generator=hg))
    readout = (lambda z: z) if head is None else (lambda z: z @ head[0].T + head[1])
    taps = {}
    logits = readout(m(x, taps=taps))
    errs = {"logits": make_golden.close(f"{name} logits vs MultiheadAttention", logits,
                                        readout(independent_logits(m, x)))}
    depth, prefix = c["num_layers"], m.prefix
    n_tok = taps["embed"].shape[1]
    g = torch.Generator().manual_seed(2000 + seed)
    out = {}
    for i in range(x.shape[0]):
        out[f"input.{i}"] = x[i]
        out[f"logits.{i}"] = logits[i]
        out[f"embed.{i}"] = taps["embed"][i]
        for b in range(depth):
            for site in ("hs", "hs_mid", "attn", "mlp", "fc1", "attn_probs", "values"):
                out[f"{site}.{b}.{i}"] = taps[site][b][i]
            for site in ("hs", "hs_mid", "attn", "mlp"):
                out[f"lens.{site}.{b}.{i}"] = readout(m.class_embedding(taps[site][b][i]))
        xi = x[i:i + 1]
        for edit in ("self_only", "no_cls"):
            et = {}
            el = readout(m(xi, edit=edit, taps=et))
            out[f"{edit}.logits.{i}"] = el[0]
            out[f"{edit}.hs.{depth - 1}.{i}"] = et["hs"][-1][0]
            diff = (el[0] - logits[i]).abs().max().item()
            assert diff > 1e-3, f"{name}: {edit} leaves the logits unchanged ({diff})"
        # Keep every prefix token (the classifier reads [CLS] and the distillation token)
        # and half the patches.
        patches = torch.randperm(n_tok - prefix, generator=g)[: (n_tok - prefix) // 2] + prefix
        keep = torch.cat([torch.arange(prefix), patches.sort().values])
        kt = {}
        kl = readout(m(xi, keep=keep, taps=kt))
        out[f"keep.tokens.{i}"] = keep
        out[f"keep.logits.{i}"] = kl[0]
        out[f"keep.hs.{depth - 1}.{i}"] = kt["hs"][-1][0]
    if name in RESIZE:
        out.update(resized(m, c, opts, RESIZE[name], seed, readout))
    if head is not None:
        # The head file with "normalize": "true": the embedding L2-normalised
        # before the head, as zero-shot CLIP (head_normalize.safetensors).
        unit = lambda z: F.normalize(z, dim=-1) @ head[0].T + head[1]  # noqa: E731
        nl = unit(m(x))
        for i in range(x.shape[0]):
            out[f"normalize.logits.{i}"] = nl[i]
            for b in range(depth):
                for site in ("hs", "hs_mid", "attn", "mlp"):
                    out[f"normalize.lens.{site}.{b}.{i}"] = unit(m.class_embedding(taps[site][b][i]))
        ranks_differ = any((unit(m.class_embedding(taps["hs"][b][i])).argsort(-1) !=
                            readout(m.class_embedding(taps["hs"][b][i])).argsort(-1)).any()
                           for b in range(depth) for i in range(x.shape[0]))
        assert ranks_differ, "normalising changes no rank: the head's bias is too small to test it"
    if name in HF_EXPORTS:
        out.update(HF_EXPORTS[name](m, c, opts, x, readout, taps))
    if opts.get("act"):
        # Every activation vitlens knows, on a grid, from torch itself.
        grid = torch.linspace(-6, 6, 97)
        out["act.x"] = grid
        for act_name, fn in ACTS.items():
            out[f"act.{act_name}"] = fn(grid)
    d = os.path.join(make_golden.OUT, name)
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "timm.safetensors")
    safetensors_io.save(path, m.timm_state_dict(), {"format": "pt"})
    if head is not None:
        safetensors_io.save(os.path.join(d, "head.safetensors"), {"weight": head[0], "bias": head[1]},
                            {"classes": json.dumps(HEAD_CLASSES)})
        safetensors_io.save(os.path.join(d, "head_normalize.safetensors"), {"weight": head[0], "bias": head[1]},
                            {"classes": json.dumps(HEAD_CLASSES), "normalize": "true"})
    if opts.get("act", "gelu") != "gelu":
        # Never inferred from the weights: config.json beside them says it.
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump({"act": opts["act"]}, f)
            f.write("\n")
    t, _ = safetensors_io.load(path)
    m2 = TimmViT(**c, **opts)
    m2.load_state_dict({k: torch.from_numpy(v) for k, v in t.items()})
    m2.eval()
    make_golden.close(f"{name} reload timm.safetensors", readout(m2(x)), logits, 0)
    meta = {
        "config": config_json(dict(c, num_classes=len(HEAD_CLASSES)) if head is not None else c, opts),
        "max_abs_err_manual_vs_torch": json.dumps({k: float(f"{v:.3g}") for k, v in errs.items()}),
        "weights": "random, torch seed %d; see randomise() in the script" % seed,
    }
    safetensors_io.save(os.path.join(d, "golden.safetensors"), out,
                        dict(meta, script="tools/reference/make_backbones.py", fixture=name,
                             inputs=str(make_golden.N_INPUTS)))
    size = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
    print(f"{name}: {size / 1024:.0f} KiB; max |manual - torch| {errs}")


def main():
    torch.set_num_threads(int(os.environ.get("THREADS", "2")))
    for name in sys.argv[1:] or list(FIXTURES):
        if name not in FIXTURES:
            raise SystemExit(f"unknown fixture {name} (have {', '.join(FIXTURES)})")
        make(name)


if __name__ == "__main__":
    main()
