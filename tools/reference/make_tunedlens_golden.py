#!/usr/bin/python3
"""Golden files for vitlens' tuned lens (vit/lens translators, vit/tunedlens).

On the `odd` fixture (torchvision ViT, 3 blocks, D 24, 11 classes) and 8 random
inputs, with torch's own modules (hooked_forward of make_golden.py):

- translators_ridge.safetensors: sklearn Ridge(alpha = RIDGE * tokens,
  fit_intercept=True, solver="cholesky") of (hs of the last block - h) on h, for
  every residual site and block (hs of the last block stays zero): the
  closed form `vitlens tune-lens --fit ridge --ridge RIDGE` must reproduce.
- translators_random.safetensors: random non-zero translators in the same
  format, and golden_tunedlens.safetensors: the inputs, targets and, per site,
  block and image, what the lens reads through them — rank of the target,
  its logit, the entropy of the lens distribution and KL(last block's hs
  distribution || it) per token — computed as h' = h + h W^T + c, then the
  model's final LayerNorm and head.

Run from the repository root:
  /usr/bin/python3 tools/reference/make_tunedlens_golden.py
Writes testdata/reference/odd/{translators_ridge,translators_random,golden_tunedlens}.safetensors.
"""

import os
import sys

import numpy as np
import torch
import torchvision
from sklearn.linear_model import Ridge

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_golden  # noqa: E402
import safetensors_io  # noqa: E402

FIXTURE = "odd"
N_IMAGES = 8
RIDGE = 1e-3  # per token
SITES = ("hs", "hs_mid")


def translators_meta(c, kind):
    return {"dim": str(c["hidden_dim"]), "depth": str(c["num_layers"]), "fit": kind,
            "script": "tools/reference/make_tunedlens_golden.py"}


@torch.no_grad()
def main():
    torch.set_num_threads(1)
    c = make_golden.CONFIGS[FIXTURE]
    d, depth = c["hidden_dim"], c["num_layers"]
    out_dir = os.path.join(make_golden.OUT, FIXTURE)
    m = torchvision.models.VisionTransformer(**c)
    m.load_state_dict(torch.load(os.path.join(out_dir, "torchvision.pth")))
    m.eval()
    x = make_golden.inputs(c, 77, n=N_IMAGES)
    _, taps = make_golden.hooked_forward(m, x)
    final = taps["hs"][depth - 1]

    # Ridge, the closed form.
    ridge = {}
    for site in SITES:
        for b in range(depth):
            w, bias = np.zeros((d, d), np.float32), np.zeros(d, np.float32)
            if not (site == "hs" and b == depth - 1):
                X = taps[site][b].reshape(-1, d).double().numpy()
                Y = final.reshape(-1, d).double().numpy() - X
                r = Ridge(alpha=RIDGE * X.shape[0], fit_intercept=True, solver="cholesky").fit(X, Y)
                w, bias = r.coef_.astype(np.float32), r.intercept_.astype(np.float32)  # coef_ is out x in
            ridge[f"{site}.{b}.weight"], ridge[f"{site}.{b}.bias"] = w, bias
    safetensors_io.save(os.path.join(out_dir, "translators_ridge.safetensors"), ridge,
                        dict(translators_meta(c, "ridge"), ridge=str(RIDGE), images=str(N_IMAGES)))

    # Random non-zero translators and what the lens reads through them.
    g = torch.Generator().manual_seed(4242)
    rand = {}
    for site in SITES:
        for b in range(depth):
            w = 0.3 * torch.randn(d, d, generator=g) / d ** 0.5
            bias = 0.3 * torch.randn(d, generator=g)
            if site == "hs" and b == depth - 1:
                w, bias = torch.zeros(d, d), torch.zeros(d)
            rand[f"{site}.{b}.weight"], rand[f"{site}.{b}.bias"] = w, bias
    safetensors_io.save(os.path.join(out_dir, "translators_random.safetensors"), rand,
                        translators_meta(c, "random"))

    def lens(h):
        return m.heads(m.encoder.ln(h)).double()

    logp = torch.log_softmax(lens(final), dim=-1)
    targets = torch.randint(0, c["num_classes"], (N_IMAGES,), generator=g)
    golden = {"targets": targets}
    for i in range(N_IMAGES):
        golden[f"input.{i}"] = x[i]
    for site in SITES:
        for b in range(depth):
            h = taps[site][b]
            h = h + h @ rand[f"{site}.{b}.weight"].T + rand[f"{site}.{b}.bias"]
            z = lens(h)
            logq = torch.log_softmax(z, dim=-1)
            entropy = -(logq.exp() * logq).sum(-1)
            kl = (logp.exp() * (logp - logq)).sum(-1)
            for i in range(N_IMAGES):
                t = targets[i]
                zt = z[i, :, t]
                golden[f"{site}.{b}.{i}.rank"] = (z[i] > zt[:, None]).sum(-1)
                golden[f"{site}.{b}.{i}.target_logit"] = zt.float()
                golden[f"{site}.{b}.{i}.entropy"] = entropy[i].float()
                golden[f"{site}.{b}.{i}.kl"] = kl[i].float()
    safetensors_io.save(os.path.join(out_dir, "golden_tunedlens.safetensors"), golden,
                        {"script": "tools/reference/make_tunedlens_golden.py", "fixture": FIXTURE,
                         "ridge": str(RIDGE), "inputs": str(N_IMAGES)})
    print(f"{FIXTURE}: translators_ridge, translators_random, golden_tunedlens for {N_IMAGES} images")


if __name__ == "__main__":
    main()
