#!/usr/bin/python3
"""Golden fixtures for the reporting layer: the original code's statistics
(martinagvilas/vit-cls_emb, spec §3.3-§3.9) computed with its own formulas on
synthetic readouts, so the Go tests can check that every corrected number
equals the original's definition.

Run by hand with Debian's interpreter (python3-numpy 1.24, python3-scipy
1.10.1), from the repository root:

    /usr/bin/python3 tools/reference/make_report_golden.py

It writes testdata/report/report.json. Everything is seeded; the file is
the same on every run.

What each part re-implements (function names are the original's):

- "summary": a fake extract (images x blocks x tokens, token 0 = [CLS]) with
  the 0-based rank, the target logit of hs, attn and mlp, patch labels for the
  image tokens, and the ranks of a random-init model over the same images.
  * print_identifiability (class_ident.py): the mean over images of the
    share of rank-0 image tokens, and the share of images with at least one,
    at the last block;
  * the Wilcoxon test against the random model (plot_identifiability_
    evolution): scipy.stats.wilcoxon(dec.flatten(), rand_dec.flatten(),
    alternative='greater') over the whole images x tokens array, [CLS]
    included, and the same over image tokens only (our option);
  * print_context_perturb's baselines: the share of rank-0 tokens pooled over
    class-labelled (and context-labelled) image tokens at the last block;
  * get_ident_segmented + compute_context_diff (identifiability.py): the mean
    r of class- minus context-labelled image tokens per block, with its
    300-round label-shuffle p (np.random seeded here; the original was not);
  * mech_interp.compute_context_diff: the same for the class-similarity
    change logit(hs-{attn,mlp}_b) - logit(hs_{b-1}), for b = 1..B-1;
  * get_ident_mean_evolution: the mean r of [CLS] and of image tokens per
    block, and ViT-L's pairwise averaging of blocks (2b-1, 2b).
  r = 1 - pos/C is computed in float64 (the original in float32 torch): the
  formula is the same, and Go then forms the same differences bit for bit, so
  the Wilcoxon ties are the same.
- "perturbed": a fake perturb-tokens readout, a list of per-image rank
  vectors ([CLS] first, then the kept image tokens; some images keep none),
  and print_context_perturb's perturbed rate: the mean over images of
  sum(r == 1) / len, [CLS] included.
- "removal": accuracy curves acc[n] with n = 0..P image tokens removed, and
  the AUC of src/plots/explainability.py, np.sum(a) / (np.max(a) * P), on the
  original's points (1..P-1 removed: it keeps 1..P-1 tokens), beside
  np.trapz over every point against the fraction removed.
- "value_classes": the interpretable value vectors of notebook 2 for the
  tiny reference model (testdata/reference/tiny/timm.safetensors): for every
  block, layer and memory j, the top-5 classes of column j of
  head.weight @ mlp.fc2.weight (or attn.proj.weight), no LN, no bias.
"""

import json
import os
import sys
import warnings

import numpy as np
from scipy import stats

sys.path.insert(0, os.path.dirname(__file__))
import safetensors_io  # noqa: E402

OUT = "testdata/report"
ROUNDS = 300


def permutation_p(category, context, rng):
    """compute_context_diff's test: 300 shuffles, p = #(true < perm) / 300."""
    true_diff = np.mean(category) - np.mean(context)
    context_len = context.shape[0]
    all_data = np.concatenate((context, category))
    random_diffs = []
    for _ in range(ROUNDS):
        rng.shuffle(all_data)
        ctx, cat = all_data[:context_len], all_data[context_len:]
        random_diffs.append(np.mean(cat) - np.mean(ctx))
    return float(true_diff), float(np.sum(true_diff < np.array(random_diffs)) / ROUNDS)


def summary_case(rng):
    n_img, depth, n_tok, C = 40, 6, 10, 10  # 9 image tokens + [CLS]
    P = n_tok - 1
    labels = rng.integers(0, C, n_img)
    sgts = (rng.random((n_img, P)) < 0.45).astype(np.int64)  # 1 class, 0 context
    pos = np.zeros((n_img, depth, n_tok), dtype=np.int64)
    logit = {s: np.zeros((n_img, depth, n_tok)) for s in ("hs", "attn", "mlp")}
    for b in range(depth):
        # Ranks improve with depth, more for class-labelled tokens from block 2
        # on; block 0 has no label effect (an intermediate p).
        p_zero = 0.05 + 0.07 * b
        for j in range(n_img):
            for t in range(n_tok):
                boost = 0.25 if (t > 0 and sgts[j, t - 1] == 1 and b >= 2) else 0.0
                pos[j, b, t] = 0 if rng.random() < p_zero + boost else rng.integers(1, C)
        logit["hs"][:, b] = np.round(rng.normal(b * 0.3, 1.0, (n_img, n_tok)), 3)
        logit["attn"][:, b] = np.round(rng.normal(0.0, 1.0, (n_img, n_tok)) + 0.8 * (b >= 3) * np.pad(sgts, ((0, 0), (1, 0))), 3)
        # The MLP change is larger on context tokens at the last blocks: p near 1.
        logit["mlp"][:, b] = np.round(rng.normal(0.0, 1.0, (n_img, n_tok)) - 0.8 * (b >= 4) * np.pad(sgts, ((0, 0), (1, 0))), 3)
    logit = {s: v.astype(np.float32) for s, v in logit.items()}  # the tables store float32
    rand_pos = rng.integers(0, C, (n_img, depth, n_tok))

    dec_last = pos[:, depth - 1, 1:]
    avg_percentage = float((np.sum(dec_last == 0, axis=1) / dec_last.shape[1]).mean())
    image_percentage = float(np.sum(np.sum(dec_last == 0, axis=1) > 0) / dec_last.shape[0])

    r = 1 - pos / C
    rr = 1 - rand_pos / C
    wilcoxon_all, wilcoxon_image = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for b in range(depth):
            wilcoxon_all.append(float(stats.wilcoxon(r[:, b].flatten(), rr[:, b].flatten(), alternative="greater").pvalue))
            wilcoxon_image.append(float(stats.wilcoxon(r[:, b, 1:].flatten(), rr[:, b, 1:].flatten(), alternative="greater").pvalue))

    flat_sgts = sgts.flatten()  # np.hstack of the per-image masks, image order
    last = r[:, depth - 1, 1:].flatten()
    class_top1 = float(np.sum(last[flat_sgts == 1] == 1) / np.sum(flat_sgts == 1))
    context_top1 = float(np.sum(last[flat_sgts == 0] == 1) / np.sum(flat_sgts == 0))

    perm_rng = np.random.default_rng(7)
    ident_diff, ident_p = [], []
    for b in range(depth):
        dec = r[:, b, 1:].flatten()
        d, p = permutation_p(dec[flat_sgts == 1], dec[flat_sgts == 0], perm_rng)
        ident_diff.append(d)
        ident_p.append(p)
    change = {}
    for site in ("attn", "mlp"):
        diffs, ps = [], []
        for b in range(1, depth):
            delta = (logit[site][:, b] - logit["hs"][:, b - 1])[:, 1:].flatten()
            d, p = permutation_p(delta[flat_sgts == 1], delta[flat_sgts == 0], perm_rng)
            diffs.append(d)
            ps.append(p)
        change[site] = {"diff": diffs, "p": ps}

    mean_cls = [float(r[:, b].mean(axis=0)[0]) for b in range(depth)]
    mean_img = [float(np.mean(r[:, b].mean(axis=0)[1:])) for b in range(depth)]
    # get_ident_mean_evolution's ViT-L branch: blocks (1,2), (3,4), ... averaged.
    paired = {}
    for name, v in (("cls", mean_cls), ("image", mean_img)):
        paired[name] = [float(np.mean([v[b - 1], v[b]])) for b in range(1, depth, 2)]

    return {
        "classes": C, "depth": depth, "tokens": n_tok,
        "labels": labels.tolist(), "patch_labels": sgts.tolist(),
        "rank": pos.tolist(), "random_rank": rand_pos.tolist(),
        "logit_hs": logit["hs"].tolist(), "logit_attn": logit["attn"].tolist(), "logit_mlp": logit["mlp"].tolist(),
        "expect": {
            "identifiable_token_share": avg_percentage,
            "images_with_identifiable_token": image_percentage,
            "wilcoxon_all_tokens": wilcoxon_all,
            "wilcoxon_image_tokens": wilcoxon_image,
            "class_token_top1": class_top1,
            "context_token_top1": context_top1,
            "ident_class_minus_context": ident_diff, "ident_class_context_p": ident_p,
            "attn_change_class_minus_context": change["attn"]["diff"], "attn_change_class_context_p": change["attn"]["p"],
            "mlp_change_class_minus_context": change["mlp"]["diff"], "mlp_change_class_context_p": change["mlp"]["p"],
            "mean_cls": mean_cls, "mean_image": mean_img,
            "paired_mean_cls": paired["cls"], "paired_mean_image": paired["image"],
        },
    }


def perturbed_case(rng):
    C, n_img = 1000, 30
    dec = []
    for j in range(n_img):
        kept = 0 if j % 5 == 0 else int(rng.integers(1, 12))  # every 5th image keeps no image token
        ranks = np.where(rng.random(1 + kept) < 0.4, 0, rng.integers(1, C, 1 + kept))
        dec.append(ranks.astype(np.int64))
    # print_context_perturb, perturbed part, verbatim but for torch -> numpy.
    acc = []
    for i in dec:
        i = 1 - (i / 1000)
        acc.append(np.sum(i == 1) / i.shape[0])
    rate = float(np.mean(np.stack(acc)))
    return {"classes": C, "ranks": [d.tolist() for d in dec], "expect": {"sequence_share": rate}}


def removal_case(rng):
    cases = []
    for P in (4, 16, 49):
        for kind in ("falling", "noisy", "flat"):
            if kind == "falling":
                acc = np.linspace(0.9, 0.1, P + 1)
            elif kind == "noisy":
                acc = np.clip(0.8 - np.linspace(0, 0.6, P + 1) + rng.normal(0, 0.05, P + 1), 0, 1)
            else:
                acc = np.full(P + 1, 0.5)
            acc = np.round(acc, 4)
            # The original's vector: accuracy with n = 1..P-1 tokens kept,
            # i.e. P-1..1 removed, flipped for the plot (order does not matter).
            emb = np.flip(acc[1:P])
            original = float(np.sum(emb) / (np.max(emb) * P))
            trapezoid = float(np.trapz(acc, dx=1.0 / P))
            cases.append({"patches": P, "accuracy": acc.tolist(), "original": original, "trapezoid": trapezoid})
    return cases


def value_classes_case():
    path = "testdata/reference/tiny/timm.safetensors"
    t, _ = safetensors_io.load(path)
    E = t["head.weight"].astype(np.float64)
    out = []
    depth = 1 + max(int(k.split(".")[1]) for k in t if k.startswith("blocks."))
    for b in range(depth):
        for layer, key in (("mlp", f"blocks.{b}.mlp.fc2.weight"), ("attn", f"blocks.{b}.attn.proj.weight")):
            Pm = E @ t[key].astype(np.float64)  # C x M
            top = np.argsort(-Pm, axis=0, kind="stable")[:5].T  # M x 5
            out.append({"block": b, "layer": layer, "classes": top.tolist(),
                        "logit1": [float(Pm[top[j, 0], j]) for j in range(Pm.shape[1])]})
    return {"model": path, "blocks": out}


def main():
    rng = np.random.default_rng(20231210)
    golden = {
        "summary": summary_case(rng),
        "perturbed": perturbed_case(rng),
        "removal": removal_case(rng),
        "value_classes": value_classes_case(),
    }
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "report.json"), "w") as f:
        json.dump(golden, f, separators=(",", ":"))
        f.write("\n")
    print("wrote", os.path.join(OUT, "report.json"))


if __name__ == "__main__":
    main()
