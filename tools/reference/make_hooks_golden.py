#!/usr/bin/python3
"""Golden tensors for the hook points, activation patching, attribution
patching and direct logit attribution (issue 19) -> testdata/reference/<fixture>/hooks.safetensors.

HookedViT below is a TransformerLens-style forward: every activation passes
through a HookPoint (an nn.Identity), and forward hooks on those modules read
it or return a replacement, as TransformerLens and ViT-Prisma patch. It is
built from the fixture's own weights (torchvision's VisionTransformer for
tiny and odd; make_backbones.TimmViT for ls_reg) and checked before anything
is written: its logits against that model's, and the activations torchvision's
own modules expose (block outputs, ln_2's input, the attention output, fc1 and
the GELU output, through torch forward hooks; the per-head pattern from
nn.MultiheadAttention with need_weights) against the hooked values.

Clean image = the fixture's input 0, corrupted = input 1 (make_golden.inputs).
The metric is logit_diff:A,B with A the clean top-1 and B the corrupted top-1
(the second-best clean class when they agree).

Run from the repository root:
  /usr/bin/python3 tools/reference/make_hooks_golden.py            # tiny odd ls_reg
  /usr/bin/python3 tools/reference/make_hooks_golden.py tiny
"""

import json
import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_backbones  # noqa: E402
import make_golden  # noqa: E402
import safetensors_io  # noqa: E402

SCRIPT = "tools/reference/make_hooks_golden.py"
BLOCK_POINTS = ["hook_resid_pre", "attn.hook_q", "attn.hook_k", "attn.hook_v", "attn.hook_pattern",
                "attn.hook_z", "hook_attn_out", "hook_resid_mid", "mlp.hook_pre", "mlp.hook_post",
                "hook_mlp_out", "hook_resid_post"]


class HookPoint(nn.Identity):
    pass


class HookedViT(nn.Module):
    """One forward with a HookPoint per TransformerLens name. Activations
    carry a batch axis; q, k, v, z are (B, n, H, dh) and the pattern
    (B, H, n, n), TransformerLens's layouts."""

    def __init__(self, parts):
        super().__init__()
        self.p = parts
        self.hook = nn.ModuleDict()
        names = ["hook_embed", "hook_pos_embed"] + [
            f"blocks.{b}.{pt}" for b in range(len(parts["blocks"])) for pt in BLOCK_POINTS]
        self.names = names
        for n in names:
            self.hook[n.replace(".", "/")] = HookPoint()

    def h(self, name, x):
        return self.hook[name.replace(".", "/")](x)

    def forward(self, x):
        p = self.p
        tok = self.h("hook_embed", p["tokens"](x))
        pos = self.h("hook_pos_embed", p["pos"].expand(x.shape[0], -1, -1))
        r = tok + pos
        heads = p["heads"]
        for b, blk in enumerate(p["blocks"]):
            pre = f"blocks.{b}."
            r = self.h(pre + "hook_resid_pre", r)
            d = r.shape[-1]
            dh = d // heads
            qkv = F.linear(blk["ln1"](r), blk["qkv_w"], blk["qkv_b"])
            q, k, v = (self.h(pre + "attn.hook_" + nm, t.reshape(x.shape[0], -1, heads, dh))
                       for nm, t in zip("qkv", qkv.split(d, dim=-1)))
            a = torch.softmax(torch.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(dh), dim=-1)
            a = self.h(pre + "attn.hook_pattern", a)
            z = self.h(pre + "attn.hook_z", torch.einsum("bhqk,bkhd->bqhd", a, v))
            attn = F.linear(z.reshape(x.shape[0], -1, d), blk["proj_w"], blk["proj_b"])
            r = self.h(pre + "hook_resid_mid", r + self.h(pre + "hook_attn_out", attn))
            f1 = self.h(pre + "mlp.hook_pre", blk["fc1"](blk["ln2"](r)))
            f2 = self.h(pre + "mlp.hook_post", blk["act"](f1))
            r = self.h(pre + "hook_resid_post", r + self.h(pre + "hook_mlp_out", blk["fc2"](f2)))
        return p["head"](p["norm"](r)[:, 0])


def torchvision_parts(m):
    """The layers of a torchvision VisionTransformer, as HookedViT reads them."""
    def tokens(x):
        h = m._process_input(x)
        return torch.cat([m.class_token.expand(x.shape[0], -1, -1), h], dim=1)
    blocks = []
    for layer in m.encoder.layers:
        sa = layer.self_attention
        blocks.append(dict(ln1=layer.ln_1, qkv_w=sa.in_proj_weight, qkv_b=sa.in_proj_bias,
                           proj_w=sa.out_proj.weight, proj_b=sa.out_proj.bias, ln2=layer.ln_2,
                           fc1=layer.mlp[0], act=F.gelu, fc2=layer.mlp[3]))
    return dict(tokens=tokens, pos=m.encoder.pos_embedding, heads=m.encoder.layers[0].self_attention.num_heads,
                blocks=blocks, norm=m.encoder.ln, head=m.heads.head)


def timm_parts(m):
    """make_backbones.TimmViT (no norm_pre, one head): LayerScale folded into
    the projections' outputs as a scaled weight and bias; for no_embed_class
    the prefix rows of the position embedding are zero."""
    assert m.norm_pre is None and m.head_dist is None

    def tokens(x):
        h = m.patch_embed.proj(x).flatten(2).transpose(1, 2)
        return torch.cat(m.prefix_tokens(x.shape[0]) + [h], dim=1)
    pos = m.pos_embed
    if m.no_embed_class:
        pos = torch.cat([torch.zeros(1, m.prefix, pos.shape[-1]), pos], dim=1)
    blocks = []
    for blk in m.blocks:
        g1 = blk.ls1.gamma if hasattr(blk, "ls1") else torch.ones(blk.attn.proj.out_features)
        g2 = blk.ls2.gamma if hasattr(blk, "ls2") else torch.ones(blk.mlp.fc2.out_features)
        blocks.append(dict(ln1=blk.norm1, qkv_w=blk.attn.qkv.weight, qkv_b=blk.attn.qkv.bias,
                           proj_w=blk.attn.proj.weight * g1[:, None], proj_b=blk.attn.proj.bias * g1,
                           ln2=blk.norm2, fc1=blk.mlp.fc1, act=m.act,
                           fc2=lambda f, fc2=blk.mlp.fc2, g=g2: fc2(f) * g))
    return dict(tokens=tokens, pos=pos, heads=m.heads, blocks=blocks, norm=m.norm, head=m.head)


def run(hm, x, patch=None):
    """Forward; patch maps a hook name to fn(activation) -> replacement.
    Returns (logits, cache) with every hook's value (after any patch)."""
    cache, handles = {}, []
    for name in hm.names:
        def fn(mod, inp, out, name=name):
            if patch and name in patch:
                out = patch[name](out)
            cache[name] = out
            return out
        handles.append(hm.hook[name.replace(".", "/")].register_forward_hook(fn))
    try:
        logits = hm(x)
    finally:
        for hd in handles:
            hd.remove()
    return logits, cache


def replace(src, head=None, token=None, point=""):
    """fn(act) copying src into act at one head and/or token (None: all)."""
    def fn(act):
        out = act.clone()
        idx = [slice(None)] * act.ndim
        if point.endswith("hook_pattern"):  # (B, H, q, k)
            if head is not None:
                idx[1] = head
            if token is not None:
                idx[2] = token
        else:  # (B, n, ...) with heads on axis 2
            if token is not None:
                idx[1] = token
            if head is not None:
                idx[2] = head
        out[tuple(idx)] = src[tuple(idx)]
        return out
    return fn


def check_against_torchvision(m, hm, x, cache, logits):
    """torchvision's own modules, hooked, must agree with HookedViT."""
    want_logits, taps = make_golden.hooked_forward(m, x)
    make_golden.close("logits", logits, want_logits)
    depth = len(m.encoder.layers)
    post = [None] * depth
    hs = [m.encoder.layers[b].mlp[1].register_forward_hook(
        lambda mod, inp, out, b=b: post.__setitem__(b, out)) for b in range(depth)]
    with torch.no_grad():
        m(x)
    for hd in hs:
        hd.remove()
    for b in range(depth):
        pre = f"blocks.{b}."
        for site, name in (("hs", "hook_resid_post"), ("hs_mid", "hook_resid_mid"), ("attn", "hook_attn_out"),
                           ("mlp", "hook_mlp_out"), ("fc1", "mlp.hook_pre"), ("attn_probs", "attn.hook_pattern")):
            make_golden.close(pre + name, cache[pre + name], taps[site][b], scaled=True)
        make_golden.close(pre + "mlp.hook_post", cache[pre + "mlp.hook_post"], post[b], scaled=True)
    make_golden.close("blocks.0.hook_resid_pre", cache["blocks.0.hook_resid_pre"], taps["embed"], scaled=True)


def dla(hm, cache, target, heads):
    """Direct logit attribution of [CLS]'s target logit of image 0, every
    part through the final norm with its scale frozen."""
    p = hm.p
    depth = len(p["blocks"])
    final = cache[f"blocks.{depth - 1}.hook_resid_post"][0, 0].double()
    norm = p["norm"]
    sigma = torch.sqrt(final.var(unbiased=False) + norm.eps)
    u = p["head"].weight[target].double() * norm.weight.double() / sigma

    def score(v):
        v = v.double()
        return float((u * (v - v.mean())).sum())
    out = {"dla.embed": score(cache["hook_embed"][0, 0]), "dla.pos_embed": score(cache["hook_pos_embed"][0, 0])}
    grid = torch.zeros(depth, heads, dtype=torch.float64)
    mlp = torch.zeros(depth, dtype=torch.float64)
    bias = torch.zeros(depth, dtype=torch.float64)
    for b, blk in enumerate(p["blocks"]):
        z = cache[f"blocks.{b}.attn.hook_z"][0, 0]  # (H, dh)
        dh = z.shape[-1]
        for h in range(heads):
            grid[b, h] = score(blk["proj_w"][:, h * dh:(h + 1) * dh] @ z[h])
        bias[b] = score(blk["proj_b"])
        mlp[b] = score(cache[f"blocks.{b}.hook_mlp_out"][0, 0])
    const = float((p["head"].weight[target].double() * norm.bias.double()).sum() + p["head"].bias[target].double())
    total = out["dla.embed"] + out["dla.pos_embed"] + float(grid.sum() + mlp.sum() + bias.sum()) + const
    return dict(out, **{"dla.heads": grid, "dla.mlp": mlp, "dla.attn_bias": bias}), total, const


def golden(name, hm, x, heads, torchvision_model=None):
    depth = len(hm.p["blocks"])
    with torch.no_grad():
        logits, cache = run(hm, x)
    if torchvision_model is not None:
        check_against_torchvision(torchvision_model, hm, x, cache, logits)
    out = {"input.0": x[0], "input.1": x[1], "logits.0": logits[0], "logits.1": logits[1]}
    for n in hm.names:
        out[f"hook.{n}.0"] = cache[n][0]
        out[f"hook.{n}.1"] = cache[n][1]
    cls_a = int(logits[0].argmax())
    cls_b = int(logits[1].argmax())
    if cls_b == cls_a:
        cls_b = int(logits[0].argsort(descending=True)[1])

    def metric(lg):
        return float(lg[0, cls_a] - lg[0, cls_b])
    clean, corrupt = x[:1], x[1:]
    with torch.no_grad():
        _, cc = run(hm, clean)
        base_logits, kc = run(hm, corrupt)
    meta = {"metric": f"logit_diff:{cls_a},{cls_b}", "clean_metric": repr(metric(logits[:1])),
            "corrupt_metric": repr(metric(base_logits))}

    def patched(hook, head=None, token=None, zero=False):
        src = torch.zeros_like(cc[hook]) if zero else cc[hook]
        with torch.no_grad():
            lg, _ = run(hm, corrupt, {hook: replace(src, head, token, hook)})
        return metric(lg)
    # Whole-layer patches at every hook.
    out["patch.layer"] = torch.tensor([patched(n) for n in hm.names], dtype=torch.float64)
    n_tok = cache["hook_embed"].shape[1]
    for b in range(depth):
        pre = f"blocks.{b}."
        for pt in ("hook_resid_pre", "hook_attn_out", "mlp.hook_post", "attn.hook_pattern", "attn.hook_z"):
            out[f"patch.token.{pre}{pt}"] = torch.tensor([patched(pre + pt, token=t) for t in range(n_tok)],
                                                         dtype=torch.float64)
        for pt in ("attn.hook_q", "attn.hook_k", "attn.hook_v", "attn.hook_pattern", "attn.hook_z"):
            out[f"patch.head.{pre}{pt}"] = torch.tensor([patched(pre + pt, head=h) for h in range(heads)],
                                                        dtype=torch.float64)
        out[f"zero.head.{pre}attn.hook_z"] = torch.tensor(
            [patched(pre + "attn.hook_z", head=h, zero=True) for h in range(heads)], dtype=torch.float64)
    out["patch.position.blocks.0.attn.hook_z"] = torch.tensor(
        [[patched("blocks.0.attn.hook_z", head=h, token=t) for t in range(n_tok)] for h in range(heads)],
        dtype=torch.float64)
    # Attribution patching: the gradient of the metric at the corrupted image
    # with respect to every hook, times (clean - corrupted), elementwise.
    keep = {}

    def grab(n):
        def fn(act):
            act.retain_grad()
            keep[n] = act
            return act
        return fn
    lg, _ = run(hm, corrupt, {n: grab(n) for n in hm.names})
    (lg[0, cls_a] - lg[0, cls_b]).backward()
    for n in hm.names:
        out[f"attr.{n}"] = ((cc[n] - kc[n]) * keep[n].grad)[0].detach()
    # Direct logit attribution of image 0's clean top-1.
    with torch.no_grad():
        parts, total, const = dla(hm, cache, cls_a, heads)
    make_golden.close("dla total", torch.tensor(total), logits[0, cls_a].double(), 1e-4)
    for k, v in parts.items():
        out[k] = torch.as_tensor(v, dtype=torch.float64)
    meta.update({"dla_target": str(cls_a), "dla_bias": repr(const), "hooks": json.dumps(hm.names),
                 "script": SCRIPT, "fixture": name})
    path = os.path.join(make_golden.OUT, name, "hooks.safetensors")
    safetensors_io.save(path, {k: v.detach().float().contiguous() for k, v in out.items()}, meta)
    print(f"{name}: {len(out)} tensors -> {path}; metric {meta['metric']} clean {meta['clean_metric']} "
          f"corrupt {meta['corrupt_metric']}")


def make_torchvision(name):
    c = make_golden.CONFIGS[name]
    m = torchvision.models.VisionTransformer(**c)
    m.load_state_dict(torch.load(os.path.join(make_golden.OUT, name, "torchvision.pth")))
    m.eval()
    hm = HookedViT(torchvision_parts(m))
    golden(name, hm, make_golden.inputs(c, make_golden.SEEDS[name]), c["num_heads"], m)


def make_timm(name):
    m, c, seed = make_backbones.load_timm(name)
    hm = HookedViT(timm_parts(m))
    x = make_golden.inputs(c, seed)
    with torch.no_grad():
        make_golden.close(f"{name} logits", hm(x), m(x))
    golden(name, hm, x, c["num_heads"])


def main():
    torch.set_num_threads(int(os.environ.get("THREADS", "2")))
    names = sys.argv[1:] or ["tiny", "odd", "ls_reg"]
    for n in names:
        if n in make_golden.CONFIGS:
            make_torchvision(n)
        else:
            make_timm(n)


if __name__ == "__main__":
    main()
