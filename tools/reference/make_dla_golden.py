#!/usr/bin/python3
"""Golden direct logit attribution (issue 19) -> testdata/dla/<name>.safetensors.

An independent reference for vit/dla: the parts are read off the fixture's
own torch model (torchvision's VisionTransformer for tiny and odd,
make_backbones.TimmViT for ls_reg, clip, deit_dist and dinov2,
make_golden.GapViT for the post-norm mean-pooled gap model) through forward
hooks and the model's taps, and attributed by autograd rather than by a
formula for the frozen norm:

- readout(X) is the model's classifier on the final residual X (n x D) with
  every scale that makes it nonlinear frozen at the real X: each final
  LayerNorm's sigma (one per token read: [CLS], and the distillation token
  for distilled DeiT, whose logit is the mean of its two heads; the mean of
  the tokens for gap) and, for a head file that L2-normalises, the norm of
  the embedding. readout is then affine in X, so with g = d readout_c / dX
  (one backward pass) the logit is sum_t g_t . X_t + readout_c(0).
- Every part is its write into the stream at every token, W_p (n x D),
  summed to X (checked), and its share is sum_t g_t . W_p[t]. A head's write
  at token t from source token s is pattern[h, t, s] * (v_s,h through W_O's
  head slice); in gap's post-norm blocks each write also passes through
  norm1 with its per-token scale frozen at the update's own statistics, and
  norm1's bias joins the block's attention bias.

Two reads per image of a CLS model: token 0 for the image's top-1 class
(the model's logit, checked against its output) and the last patch token for
the next class (read through the lens: the final norm and the class
embedding, the mean of DeiT's two heads). The mean-pooled gap model has one.

Run from the repository root:
  /usr/bin/python3 tools/reference/make_dla_golden.py            # every fixture
  /usr/bin/python3 tools/reference/make_dla_golden.py gap clip_normalize
"""

import json
import os
import sys

import torch
import torch.nn.functional as F
import torchvision

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_backbones  # noqa: E402
import make_golden  # noqa: E402
import safetensors_io  # noqa: E402

SCRIPT = "tools/reference/make_dla_golden.py"
OUT = os.path.join(os.path.dirname(make_golden.OUT), "dla")
# name -> (weights folder under testdata/reference, head file or None)
FIXTURES = {
    "tiny": ("tiny", None), "odd": ("odd", None), "ls_reg": ("ls_reg", None),
    "deit_dist": ("deit_dist", None), "dinov2": ("dinov2", None), "gap": ("gap", None),
    "clip": ("clip", "head.safetensors"), "clip_normalize": ("clip", "head_normalize.safetensors"),
}


def frozen_ln(v, ln, stats):
    """LayerNorm of v with sigma taken from stats (the real vector): affine in v."""
    sigma = torch.sqrt(stats.var(-1, unbiased=False, keepdim=True) + ln.eps)
    return (v - v.mean(-1, keepdim=True)) / sigma * ln.weight.double() + ln.bias.double()


def lin(layer, v):
    return F.linear(v, layer.weight.double(), None if layer.bias is None else layer.bias.double())


# ---------------------------------------------------------------------------
# Each loader returns a dict: x (inputs), logits (the model's own), final
# (B, n, D), parts(i) -> {name: write (n, D) or per-source (H, n_src, n, D)},
# readout(X, Xreal, token) -> logits, pool ("cls" or "mean"), config.

def torchvision_fixture(name):
    c = make_golden.CONFIGS[name]
    m = torchvision.models.VisionTransformer(**c)
    m.load_state_dict(torch.load(os.path.join(make_golden.OUT, name, "torchvision.pth")))
    m.eval()
    x = make_golden.inputs(c, make_golden.SEEDS[name])
    depth, heads = c["num_layers"], c["num_heads"]
    cap = {"ln1": [None] * depth, "mlp": [None] * depth}
    hs = [m.encoder.register_forward_pre_hook(lambda mod, inp: cap.__setitem__("tokens", inp[0])),
          m.encoder.ln.register_forward_pre_hook(lambda mod, inp: cap.__setitem__("final", inp[0]))]
    for b, layer in enumerate(m.encoder.layers):
        hs.append(layer.ln_1.register_forward_hook(lambda mod, inp, out, b=b: cap["ln1"].__setitem__(b, out)))
        hs.append(layer.mlp.register_forward_hook(lambda mod, inp, out, b=b: cap["mlp"].__setitem__(b, out)))
    with torch.no_grad():
        logits = m(x)
    for h in hs:
        h.remove()
    blocks = []
    for b, layer in enumerate(m.encoder.layers):
        sa = layer.self_attention
        y = cap["ln1"][b]
        with torch.no_grad():
            _, pattern = sa(y, y, y, need_weights=True, average_attn_weights=False)
        d = y.shape[-1]
        v = F.linear(y, sa.in_proj_weight[2 * d:], sa.in_proj_bias[2 * d:])
        blocks.append(dict(pattern=pattern, v=v.reshape(x.shape[0], -1, heads, d // heads),
                           proj_w=sa.out_proj.weight, proj_b=sa.out_proj.bias, mlp=cap["mlp"][b]))
    embed = {"embed": cap["tokens"], "pos_embed": m.encoder.pos_embedding.expand_as(cap["tokens"])}

    def readout(X, Xr, token):
        return lin(m.heads.head, frozen_ln(X[token], m.encoder.ln, Xr[token]))
    return dict(x=x, logits=logits, final=cap["final"], embed=embed, blocks=blocks, readout=readout,
                pool="cls", heads=heads, post_norm=False)


def timm_fixture(name, head_file):
    m, c, seed = make_backbones.load_timm(name)
    x = make_golden.inputs(c, seed)
    heads = c["num_heads"]
    cap = {}
    hs = [m.norm.register_forward_pre_hook(lambda mod, inp: cap.__setitem__("final", inp[0])),
          m.patch_embed.proj.register_forward_hook(lambda mod, inp, out: cap.__setitem__("patches", out))]
    if m.norm_pre is not None:
        hs.append(m.norm_pre.register_forward_hook(lambda mod, inp, out: cap.__setitem__("norm_pre", out)))
    taps = {}
    with torch.no_grad():
        out = m(x, taps=taps)
    for h in hs:
        h.remove()
    head = None
    normalize = False
    if head_file:
        t, meta = safetensors_io.load(os.path.join(make_golden.OUT, name, head_file))
        head = torch.nn.Linear(t["weight"].shape[1], t["weight"].shape[0])
        head.weight.data, head.bias.data = torch.from_numpy(t["weight"]), torch.from_numpy(t["bias"])
        normalize = meta.get("normalize") == "true"
        e = out
        logits = (F.normalize(e, dim=-1) if normalize else e) @ head.weight.T + head.bias
    else:
        logits = out
    blocks = []
    for b, blk in enumerate(m.blocks):
        g1 = blk.ls1.gamma if hasattr(blk, "ls1") else torch.ones(blk.attn.proj.out_features)
        blocks.append(dict(pattern=taps["attn_probs"][b], v=taps["values"][b].transpose(1, 2),
                           proj_w=blk.attn.proj.weight * g1[:, None], proj_b=blk.attn.proj.bias * g1,
                           mlp=taps["mlp"][b]))
    if m.norm_pre is not None:
        embed = {"embed": cap["norm_pre"]}
    else:
        pre = torch.cat(m.prefix_tokens(x.shape[0]), dim=1)
        patches = cap["patches"].flatten(2).transpose(1, 2)
        tokens = torch.cat([pre, patches], dim=1)
        pos = m.pos_embed
        if m.no_embed_class:
            pos = torch.cat([torch.zeros(1, m.prefix, pos.shape[-1]), pos], dim=1)
        embed = {"embed": tokens, "pos_embed": pos.expand_as(tokens)}

    def readout(X, Xr, token):
        z = frozen_ln(X[token], m.norm, Xr[token])
        if m.head_dist is not None:
            # The model's logit reads [CLS] through head and the distillation
            # token through head_dist; the lens reads one token through both.
            other = frozen_ln(X[1], m.norm, Xr[1]) if token == 0 else z
            return (lin(m.head, z) + lin(m.head_dist, other)) / 2
        e = lin(m.head, z)
        if head is None:
            return e
        if normalize:
            er = lin(m.head, frozen_ln(Xr[token], m.norm, Xr[token]))
            e = e / er.norm()
        return lin(head, e)
    return dict(x=x, logits=logits, final=cap["final"], embed=embed, blocks=blocks, readout=readout,
                pool="cls", heads=heads, post_norm=False)


def gap_fixture():
    c = make_golden.CONFIGS["tiny"]
    m = make_golden.GapViT(**c)
    t, _ = safetensors_io.load(os.path.join(make_golden.OUT, "gap", "timm.safetensors"))
    m.load_state_dict(make_golden._gap_torch_names(t))
    m.eval()
    x = make_golden.inputs(c, make_golden.SEEDS["gap"])
    depth = c["num_layers"]
    cap = {"update": [None] * depth}
    hs = [m.patch_embed.register_forward_hook(lambda mod, inp, out: cap.__setitem__("patches", out))]
    for b, blk in enumerate(m.blocks):
        hs.append(blk.proj.register_forward_hook(lambda mod, inp, out, b=b: cap["update"].__setitem__(b, out)))
    taps = {}
    with torch.no_grad():
        logits = m(x, taps)
    for h in hs:
        h.remove()
    blocks = []
    for b, blk in enumerate(m.blocks):
        blocks.append(dict(pattern=taps["attn_probs"][b], v=taps["values"][b].transpose(1, 2),
                           proj_w=blk.proj.weight, proj_b=blk.proj.bias, mlp=taps["mlp"][b],
                           norm1=blk.norm1, update=cap["update"][b]))
    patches = cap["patches"].flatten(2).transpose(1, 2)
    embed = {"embed": patches, "pos_embed": m.pos_embed.expand_as(patches)}

    def readout(X, Xr, token):
        return lin(m.head, frozen_ln(X.mean(0), m.fc_norm, Xr.mean(0)))
    return dict(x=x, logits=logits, final=taps["hs"][-1], embed=embed, blocks=blocks, readout=readout,
                pool="mean", heads=c["num_heads"], post_norm=True)


# ---------------------------------------------------------------------------

def writes(f, i):
    """Image i's parts as writes into the stream, float64: {(kind, block): (n, D)}
    and per head the writes by source, (H, n_src, n, D)."""
    parts = {(k, -1): v[i].double() for k, v in f["embed"].items()}
    by_source = []
    for b, blk in enumerate(f["blocks"]):
        a = blk["pattern"][i].double()  # (H, n, n): [head, query t, key s]
        v = blk["v"][i].double()  # (n, H, dh)
        heads, dh = a.shape[0], v.shape[-1]
        w = blk["proj_w"].double()
        # out[h, s] = W_O[:, h slice] v_{s,h}: what source s writes through head h.
        out = torch.stack([v[:, h] @ w[:, h * dh:(h + 1) * dh].T for h in range(heads)])  # (H, n, D)
        src = a[:, :, :, None] * out[:, None, :, :]  # (H, t, s, D)
        src = src.permute(0, 2, 1, 3)  # (H, s, t, D)
        bias = blk["proj_b"].double().expand(a.shape[1], -1)
        if f["post_norm"]:
            ln = blk["norm1"]
            upd = blk["update"][i].double()  # (n, D): the update before norm1
            sigma = torch.sqrt(upd.var(-1, unbiased=False, keepdim=True) + ln.eps)  # (t, 1)
            centre = lambda y: (y - y.mean(-1, keepdim=True)) / sigma * ln.weight.double()  # noqa: E731
            src = centre(src)
            bias = centre(bias) + ln.bias.double()
        by_source.append(src)
        for h in range(heads):
            parts[("head", b, h)] = src[h].sum(0)
        parts[("attn_bias", b)] = bias
        parts[("mlp", b)] = blk["mlp"][i].double()
    return parts, by_source


def f64(v):
    return torch.tensor(v, dtype=torch.float64)


def attribute(f, i, token, target):
    """Every part's share of readout_c at token, by autograd through the frozen readout."""
    Xr = f["final"][i].double()
    X = Xr.clone().requires_grad_(True)
    logit = f["readout"](X, Xr, token)[target]
    logit.backward()
    g = X.grad
    with torch.no_grad():
        bias = float(f["readout"](torch.zeros_like(Xr), Xr, token)[target])
        parts, by_source = writes(f, i)
        total = sum(parts.values())
        make_golden.close(f"parts sum to the final residual (image {i})", total, Xr, 1e-5, scaled=True)
        share = {k: float((v * g).sum()) for k, v in parts.items()}
        depth = len(f["blocks"])
        heads = f["heads"]
        out = {
            "heads": f64([[share[("head", b, h)] for h in range(heads)] for b in range(depth)]),
            "source": torch.stack([torch.einsum("hstd,td->hs", s, g) for s in by_source]),
            "attn_bias": f64([share[("attn_bias", b)] for b in range(depth)]),
            "mlp": f64([share[("mlp", b)] for b in range(depth)]),
            "embed": f64([share[("embed", -1)]]),
            "bias": f64([bias]),
            "logit": f64([float(logit)]),
        }
        if ("pos_embed", -1) in share:
            out["pos_embed"] = f64([share[("pos_embed", -1)]])
        rest = sum(share.values())
        # The parts are float64 sums of the model's float32 activations; X is
        # the float32 residual: they agree to float32 rounding.
        make_golden.close(f"parts + bias vs the frozen readout (image {i})", torch.tensor(rest + bias),
                          logit.detach(), 1e-5, scaled=True)
        make_golden.close(f"per-source shares vs the heads (image {i})", out["source"].sum(-1), out["heads"],
                          1e-9, scaled=True)
    return out


def make(name):
    folder, head_file = FIXTURES[name]
    if folder in make_golden.CONFIGS:
        f = torchvision_fixture(folder)
    elif folder == "gap":
        f = gap_fixture()
    else:
        f = timm_fixture(folder, head_file)
    out = {}
    meta = {"script": SCRIPT, "fixture": name, "weights": folder, "head": head_file or "",
            "inputs": str(f["x"].shape[0])}
    for i in range(f["x"].shape[0]):
        out[f"input.{i}"] = f["x"][i]
        top = int(f["logits"][i].argmax())
        n_tok = f["final"].shape[1]
        reads = [("model", 0, top)]
        if f["pool"] == "cls":
            reads.append(("token", n_tok - 1, (top + 1) % f["logits"].shape[-1]))
        for read, token, target in reads:
            r = attribute(f, i, token, target)
            if read == "model":
                # The frozen readout at the real residual is the model's own logit.
                make_golden.close(f"{name} image {i} logit", r["logit"].double(),
                                  f["logits"][i, target:target + 1].double(), 1e-4, scaled=True)
            for k, v in r.items():
                out[f"dla.{i}.{read}.{k}"] = v
            meta[f"dla.{i}.{read}.target"] = str(target)
            meta[f"dla.{i}.{read}.token"] = str(token if f["pool"] == "cls" else -1)
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, name + ".safetensors")
    safetensors_io.save(path, {k: v.detach().float().contiguous() for k, v in out.items()}, meta)
    print(f"{name}: {len(out)} tensors -> {path}; " + json.dumps(
        {k: v for k, v in meta.items() if k.endswith("target")}))


def main():
    torch.set_num_threads(int(os.environ.get("THREADS", "2")))
    for name in sys.argv[1:] or list(FIXTURES):
        if name not in FIXTURES:
            raise SystemExit(f"unknown fixture {name} (have {', '.join(FIXTURES)})")
        make(name)


if __name__ == "__main__":
    main()
