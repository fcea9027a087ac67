#!/usr/bin/python3
"""Golden gradients, explainability maps and probe results for vitlens'
vit/explain and vit/probe packages.

Explainability (testdata/explain/<fixture>.safetensors): the fixtures of
make_golden.py (their timm.safetensors weights and golden inputs) are run by an
explicit float64 torch forward, and torch autograd gives
  - chefer.grad.<b>.<i>  ∂y_c/∂A_b, (H, N, N): the final logit of the target
    class differentiated with respect to block b's post-softmax attention;
  - grad.embed.<i>       ∂y_c/∂(block-0 input), (N, D);
  - chefer.map.<i>       Chefer et al.'s relevance R[0, 1:] with
    Ā_b = mean_h clamp≥0(∇A_b ⊙ A_b), R ← R + Ā_b R from R = I;
  - ours.grad.<b>.<i>    row 0 of ∂ℓ_b/∂A_b, (H, N), where ℓ_b is the cross
    entropy of head(norm(attn_out_b[0])) against the target, and
    ours.map.<i> = −Σ_b Σ_h ours.grad.<b>.<i>[h, 1:] (the paper's map);
  - ours2.*              the same with the original code's double softmax
    (CrossEntropyLoss(softmax(o)), spec A13);
  - catprob.grad.<b>.<i> row 0 of ∂o_b[0, c]/∂A_b, (H, N): the original's
    grad_type 'cat_prob' (the projected logit of the target itself), and
    catprob.map.<i> = +Σ_b Σ_h catprob.grad.<b>.<i>[h, 1:];
  - kpv.grad.<b>.<i>     the original's input_type 'key_proj_vals': row t of
    ∂ℓ_t/∂kpv_b for every token t, (N, D), where kpv_b is block b's
    concatenated head outputs (before the out-projection) and ℓ_t the cross
    entropy of token t's projected attention output, one autograd call per
    token as the original does; kpv.map.<i> = −Σ_b Σ_features kpv.grad over
    the image tokens, and kpv.headmap.<b>.<i> (H, N−1) the same summed over
    each head's features of block b only;
  - kpvcat.*             key_proj_vals with the cat_prob objective (maps with
    the + sign).
Models without [CLS] (gap) get only the chefer.grad and grad.embed tensors.
"Image tokens" are the positions after [CLS] and any distillation token or
registers. The backbones of make_backbones.py (BACKBONES) are explained through
their own readout (see head()) and add
  - removal.ours.<direction>.<i>  the predictions with 0..P image tokens
    removed along ours.map (every prefix token kept), as vit/explain's Curve.
activations.safetensors holds each MLP activation's derivative on a grid.
Everything is computed in float64 and stored as float32.

Probes (testdata/probe/ridge_probe.json): random per-token features, ridge
probes per token position fitted with sklearn Ridge(alpha=1.0) on ±1 one-hot
targets (solver 'cholesky', exact; the original's 'lsqr' stops at tol 1e-4),
and the test top-1 accuracy and 0-based true-class ranks per token.

Run from the repository root after make_golden.py and make_backbones.py:
  /usr/bin/python3 tools/reference/make_explain_golden.py [fixture...]
"""

import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
import safetensors_io  # noqa: E402

REF = os.path.join(ROOT, "testdata", "reference")
OUT = os.path.join(ROOT, "testdata", "explain")
PROBE_OUT = os.path.join(ROOT, "testdata", "probe")
SCRIPT = "tools/reference/make_explain_golden.py"
FIXTURES = ["tiny", "odd", "nobias", "gap"]
# The backbones of make_backbones.py (issue 11), each explained with its own
# readout: distilled DeiT (two heads, the distillation token), LayerScale with
# registers and no_embed_class, a CLIP-style tower (norm_pre, QuickGELU, a
# bias-free projection read through its class head file), and the ls_reg
# weights again with the tanh GELU (the Go side loads them with act gelu_tanh).
BACKBONES = {"deit_dist": ("deit_dist", None), "ls_reg": ("ls_reg", None), "clip": ("clip", None),
             "ls_reg_tanh": ("ls_reg", "gelu_tanh"), "clip_normalize": ("clip", None)}
# Fixtures read through a head file with "normalize": "true" (the embedding
# L2-normalised before the class head).
NORMALIZED = {"clip_normalize": "head_normalize.safetensors"}
ACTS = {
    "gelu": F.gelu,
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "quick_gelu": lambda x: x * torch.sigmoid(1.702 * x),  # OpenAI CLIP's QuickGELU
}


def load_fixture(name):
    src, act = BACKBONES.get(name, (name, None))
    w, _ = safetensors_io.load(os.path.join(REF, src, "timm.safetensors"))
    g, meta = safetensors_io.load(os.path.join(REF, src, "golden.safetensors"))
    cfg = json.loads(meta["config"])
    if act is not None:
        cfg["act"] = act
    w = {k: torch.from_numpy(v).double() for k, v in w.items()}
    head_file = os.path.join(REF, src, NORMALIZED.get(name, "head.safetensors"))
    if os.path.exists(head_file):  # a class head file read after the model's projection
        hw, hmeta = safetensors_io.load(head_file)
        w.update({"classhead." + k: torch.from_numpy(v).double() for k, v in hw.items()})
        cfg["head_normalize"] = hmeta.get("normalize") == "true"
    inputs = [torch.from_numpy(g[f"input.{i}"]).double() for i in range(int(meta["inputs"]))]
    cfg_json = json.dumps({k: v for k, v in cfg.items() if k != "head_normalize"})
    return w, cfg, inputs, cfg_json


def first_image_token(cfg):
    """[CLS], then the distillation token or the registers, then the patches."""
    if not cfg["class_token"]:
        return 0
    return 1 + int(cfg.get("dist_token", False)) + cfg.get("registers", 0)


def ln(x, w, prefix, eps):
    return F.layer_norm(x, x.shape[-1:], w[prefix + ".weight"], w[prefix + ".bias"], eps)


def forward(w, cfg, x, keep=None):
    """One image (C, S, S) → logits, the attention of every block (leaf-like
    nodes autograd can differentiate with respect to), each block's attention
    sublayer output (N, D), the block-0 input and each block's concatenated
    head outputs (N, D, the original's key_proj_vals)."""
    eps, heads, d = cfg["ln_eps"], cfg["heads"], cfg["dim"]
    dh = d // heads
    h = F.conv2d(x[None], w["patch_embed.proj.weight"], w["patch_embed.proj.bias"],
                 stride=cfg["patch_size"])
    h = h.flatten(2).transpose(1, 2)[0]
    prefix = [w[k].reshape(-1, d) for k in ("cls_token", "dist_token", "reg_token") if k in w]
    pos = w["pos_embed"].reshape(-1, d)
    if pos.shape[0] == h.shape[0] and prefix:  # timm's no_embed_class: patches only
        h = torch.cat(prefix + [h + pos])
    else:
        h = torch.cat(prefix + [h]) + pos
    if "norm_pre.weight" in w:
        h = ln(h, w, "norm_pre", eps)
    if keep is not None:  # the removal test's token selection, after the embedding
        h = h[keep]
    embed = h
    act = ACTS[cfg.get("act") or "gelu"]
    attns, outs, kpvs = [], [], []
    for b in range(cfg["depth"]):
        p = f"blocks.{b}."
        y = h if cfg["post_norm"] else ln(h, w, p + "norm1", eps)
        qkv = F.linear(y, w[p + "attn.qkv.weight"], w.get(p + "attn.qkv.bias"))
        n = qkv.shape[0]
        q, k, v = (t.reshape(n, heads, dh).transpose(0, 1) for t in qkv.split(d, dim=-1))
        a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(dh), dim=-1)
        attns.append(a)
        o = (a @ v).transpose(0, 1).reshape(n, d)
        kpvs.append(o)
        u = F.linear(o, w[p + "attn.proj.weight"], w[p + "attn.proj.bias"])
        if p + "ls1.gamma" in w:  # LayerScale
            u = u * w[p + "ls1.gamma"]
        if cfg["post_norm"]:
            u = ln(u, w, p + "norm1", eps)
        outs.append(u)
        h = h + u
        z = h if cfg["post_norm"] else ln(h, w, p + "norm2", eps)
        m = F.linear(act(F.linear(z, w[p + "mlp.fc1.weight"], w[p + "mlp.fc1.bias"])),
                     w[p + "mlp.fc2.weight"], w[p + "mlp.fc2.bias"])
        if p + "ls2.gamma" in w:
            m = m * w[p + "ls2.gamma"]
        if cfg["post_norm"]:
            m = ln(m, w, p + "norm2", eps)
        h = h + m
    if "head_dist.weight" in w:
        # Distilled DeiT's eval output: the mean of head on [CLS] and
        # head_dist on the distillation token, each through the final norm.
        z = ln(h[:2], w, "norm", cfg["ln_eps"])
        logits = (F.linear(z[0], w["head.weight"], w["head.bias"]) +
                  F.linear(z[1], w["head_dist.weight"], w["head_dist.bias"])) / 2
    elif cfg["pool"] == "cls":
        logits = head(w, cfg, h[0])
    else:
        logits = head(w, cfg, h.mean(0))
    return logits, attns, outs, embed, kpvs


def head(w, cfg, v):
    """The lens: the final norm, then the class embedding: the model's head
    (the mean of head and head_dist for distilled DeiT), or a CLIP tower's
    bias-free projection followed by the class head file."""
    norm = "norm" if cfg["pool"] == "cls" else "fc_norm"
    z = ln(v, w, norm, cfg["ln_eps"])
    y = F.linear(z, w["head.weight"], w.get("head.bias"))
    if "head_dist.weight" in w:
        y = (y + F.linear(z, w["head_dist.weight"], w["head_dist.bias"])) / 2
    if "classhead.weight" in w:
        if cfg.get("head_normalize"):
            y = F.normalize(y, dim=-1)
        y = F.linear(y, w["classhead.weight"], w.get("classhead.bias"))
    return y


def chefer_relevance(attns, grads, first):
    n = attns[0].shape[-1]
    r = torch.eye(n, dtype=torch.float64)
    for a, g in zip(attns, grads):
        cam = (g * a).clamp(min=0).mean(0)
        r = r + cam @ r
    return r[0, first:]


def explain_one(w, cfg, x, target):
    x = x.clone().requires_grad_(True)  # gives every activation a grad_fn
    logits, attns, outs, embed, kpvs = forward(w, cfg, x)
    out = {"logits": logits.detach()}
    y = logits[target]
    grads = torch.autograd.grad(y, attns + [embed], retain_graph=True)
    out["grad.embed"] = grads[-1]
    for b, g in enumerate(grads[:-1]):
        out[f"chefer.grad.{b}"] = g
    if not cfg["class_token"]:
        return out
    first = first_image_token(cfg)
    out["chefer.map"] = chefer_relevance([a.detach() for a in attns], grads[:-1], first)
    tgt = torch.tensor([target])
    for key, double in (("ours", False), ("ours2", True)):
        total = 0
        for b in range(cfg["depth"]):
            o = head(w, cfg, outs[b][0])[None]
            if double:
                o = torch.softmax(o, dim=-1)  # the original's extra softmax (A13)
            loss = F.cross_entropy(o, tgt)
            (g,) = torch.autograd.grad(loss, attns[b], retain_graph=True)
            # ℓ depends on the [CLS] query row only.
            assert g[:, 1:].abs().max().item() == 0, "loss leaks into other query rows"
            out[f"{key}.grad.{b}"] = g[:, 0]
            total = total + g[:, 0, first:].sum(0)
        out[f"{key}.map"] = -total
    # cat_prob: the original differentiates the projected logit o[0, c].
    total = 0
    for b in range(cfg["depth"]):
        y = head(w, cfg, outs[b][0])[target]
        (g,) = torch.autograd.grad(y, attns[b], retain_graph=True)
        assert g[:, 1:].abs().max().item() == 0, "objective leaks into other query rows"
        out[f"catprob.grad.{b}"] = g[:, 0]
        total = total + g[:, 0, first:].sum(0)
    out["catprob.map"] = total
    # key_proj_vals: per token t, ∂ℓ_t/∂kpv row t, one call per token.
    heads, n = cfg["heads"], kpvs[0].shape[0]
    dh = cfg["dim"] // heads
    for key, sign in (("kpv", -1), ("kpvcat", 1)):
        total = 0
        for b in range(cfg["depth"]):
            o = head(w, cfg, outs[b])  # (N, C): every token's projection
            if key == "kpv":
                losses = F.cross_entropy(o, tgt.repeat(n), reduction="none")
            else:
                losses = o[:, target]
            rows = []
            for t in range(n):
                (g,) = torch.autograd.grad(losses[t], kpvs[b], retain_graph=True)
                others = torch.cat([g[:t], g[t + 1:]])
                assert others.abs().max().item() == 0, "token objective leaks into other tokens"
                rows.append(g[t])
            g = torch.stack(rows)
            out[f"{key}.grad.{b}"] = g
            per_head = g[first:].reshape(n - first, heads, dh).sum(-1).T  # (H, patches)
            out[f"{key}.headmap.{b}"] = sign * per_head
            total = total + per_head.sum(0)
        out[f"{key}.map"] = sign * total
    return out


def removal_curve(w, cfg, x, scores, direction):
    """The model's prediction with 0..P image tokens removed in the order of
    scores (most important first; ties to the lower position), every prefix
    token kept: vit/explain's Curve."""
    first = first_image_token(cfg)
    P = scores.shape[0]
    order = sorted(range(P), key=lambda p: -float(scores[p]))  # stable: ties by position
    order = [first + p for p in order]
    preds = []
    for n in range(P + 1):
        rest = order[:P - n] if direction == "negative" else order[n:]
        keep = list(range(first)) + sorted(rest)
        with torch.no_grad():
            preds.append(int(forward(w, cfg, x, keep=torch.tensor(keep))[0].argmax()))
    return torch.tensor(preds, dtype=torch.int64)


def make_explain(name):
    w, cfg, inputs, cfg_json = load_fixture(name)
    out = {}
    for i, x in enumerate(inputs):
        with torch.no_grad():
            logits = forward(w, cfg, x)[0]
        pred = int(logits.argmax())
        src, act = BACKBONES.get(name, (name, None))
        if name in BACKBONES and act is None:
            # This forward re-states make_backbones.py's TimmViT: the same logits.
            g, _ = safetensors_io.load(os.path.join(REF, src, "golden.safetensors"))
            key = f"normalize.logits.{i}" if name in NORMALIZED else f"logits.{i}"
            err = (logits - torch.from_numpy(g[key]).double()).abs().max().item()
            assert err < 1e-5, f"{name}: logits differ from make_backbones.py's by {err}"
        # Input 0 explains the predicted class, the others a different one.
        target = pred if i == 0 else (pred + 1) % cfg["classes"]
        res = explain_one(w, cfg, x, target)
        out[f"input.{i}"] = x.float()
        out[f"target.{i}"] = torch.tensor([target], dtype=torch.int64)
        for k, v in res.items():
            out[f"{k}.{i}"] = v.detach().float()
        if name in BACKBONES:
            # The removal test's curves along the paper's map, negative and positive.
            for direction in ("negative", "positive"):
                out[f"removal.ours.{direction}.{i}"] = removal_curve(w, cfg, x, res["ours.map"].detach(), direction)
    os.makedirs(OUT, exist_ok=True)
    path = os.path.join(OUT, name + ".safetensors")
    safetensors_io.save(path, out, {"script": SCRIPT, "fixture": name, "config": cfg_json,
                                    "inputs": str(len(inputs)), "precision": "float64, stored as float32"})
    print(f"{path}: {os.path.getsize(path) / 1024:.0f} KiB")


def make_activations():
    """Each MLP activation's derivative on a grid, from torch autograd
    (testdata/explain/activations.safetensors: act.x, grad.<name>)."""
    x = torch.linspace(-8, 8, 161, dtype=torch.float64, requires_grad=True)
    out = {"act.x": x.detach().float()}
    for name, fn in ACTS.items():
        (g,) = torch.autograd.grad(fn(x).sum(), x)
        out[f"grad.{name}"] = g.float()
    path = os.path.join(OUT, "activations.safetensors")
    safetensors_io.save(path, out, {"script": SCRIPT, "precision": "float64, stored as float32"})
    print(f"{path}: {os.path.getsize(path) / 1024:.0f} KiB")


def make_probe():
    """Per-token ridge probes on random features with class structure."""
    from sklearn.linear_model import Ridge

    rng = np.random.default_rng(7)
    classes, tokens, dim, n_train, n_test = 4, 3, 6, 40, 24
    centres = rng.normal(size=(classes, tokens, dim))
    def draw(n):
        labels = np.arange(n) % classes
        rng.shuffle(labels)
        feats = centres[labels] * np.array([0.3, 1.0, 2.0])[None, :, None] + rng.normal(size=(n, tokens, dim))
        return feats.astype(np.float32), labels
    xtr, ytr = draw(n_train)
    xte, yte = draw(n_test)
    targets = -np.ones((n_train, classes))
    targets[np.arange(n_train), ytr] = 1
    acc, ranks, preds = [], [], []
    for t in range(tokens):
        r = Ridge(alpha=1.0, solver="cholesky").fit(xtr[:, t].astype(np.float64), targets)
        p = r.predict(xte[:, t].astype(np.float64))
        preds.append(p.tolist())
        acc.append(float((p.argmax(1) == yte).mean()))
        # The original: pos = C − 1 − (position of the label in the ascending argsort).
        order = np.argsort(p, axis=1)
        ranks.append([int(classes - 1 - np.where(order[j] == yte[j])[0][0]) for j in range(n_test)])
    os.makedirs(PROBE_OUT, exist_ok=True)
    path = os.path.join(PROBE_OUT, "ridge_probe.json")
    with open(path, "w") as f:
        json.dump({"script": SCRIPT, "classes": classes, "tokens": tokens, "dim": dim,
                   "alpha": 1.0, "solver": "cholesky",
                   "train_features": xtr.tolist(), "train_labels": ytr.tolist(),
                   "test_features": xte.tolist(), "test_labels": yte.tolist(),
                   "predictions": preds, "accuracy": acc, "ranks": ranks}, f)
        f.write("\n")
    print(f"{path}: {os.path.getsize(path) / 1024:.0f} KiB, per-token accuracy {acc}")


def main():
    torch.set_num_threads(int(os.environ.get("THREADS", "2")))
    names = sys.argv[1:] or FIXTURES + list(BACKBONES) + ["activations", "probe"]
    for name in names:
        if name == "probe":
            make_probe()
        elif name == "activations":
            make_activations()
        elif name in FIXTURES or name in BACKBONES:
            make_explain(name)
        else:
            raise SystemExit(f"unknown fixture {name}")


if __name__ == "__main__":
    main()
