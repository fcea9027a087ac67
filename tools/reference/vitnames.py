"""Name tables from torchvision's VisionTransformer state_dict to the timm and
Hugging Face families. One table per family, each readable on one screen, so a
reviewer can check them against the Go loaders' tables."""

import json


_TIMM_TOP = {
    "conv_proj.weight": "patch_embed.proj.weight",
    "conv_proj.bias": "patch_embed.proj.bias",
    "class_token": "cls_token",
    "encoder.pos_embedding": "pos_embed",
    "encoder.ln.weight": "norm.weight",
    "encoder.ln.bias": "norm.bias",
    "heads.head.weight": "head.weight",
    "heads.head.bias": "head.bias",
}
_TIMM_BLOCK = {
    "ln_1.": "norm1.",
    "self_attention.in_proj_weight": "attn.qkv.weight",
    "self_attention.in_proj_bias": "attn.qkv.bias",
    "self_attention.out_proj.": "attn.proj.",
    "ln_2.": "norm2.",
    "mlp.0.": "mlp.fc1.",
    "mlp.3.": "mlp.fc2.",
}
_TV_BLOCK = "encoder.layers.encoder_layer_"


def timm_name(tv_key):
    """timm keeps torchvision's fused in_proj (q, k, v rows) as attn.qkv and the
    same (1, N, D) / (1, 1, D) token tensors; only the names differ."""
    if tv_key in _TIMM_TOP:
        return _TIMM_TOP[tv_key]
    if tv_key.startswith(_TV_BLOCK):
        i, rest = tv_key[len(_TV_BLOCK):].split(".", 1)
        for a, b in _TIMM_BLOCK.items():
            if rest.startswith(a):
                return f"blocks.{i}." + b + rest[len(a):]
    raise KeyError(f"no timm name for torchvision key {tv_key}")


def torchvision_to_timm(sd, drop_qkv_bias=False):
    return {timm_name(k): v.detach().clone() for k, v in sd.items()
            if not (drop_qkv_bias and k.endswith("in_proj_bias"))}


def timm_to_torchvision(sd, tv_keys):
    """tv_keys: the torchvision model's state_dict keys (gives the inverse table)."""
    inv = {timm_name(k): k for k in tv_keys}
    return {inv[k]: v for k, v in sd.items()}


def torchvision_to_hf(sd, depth, dim):
    """Hugging Face ViTForImageClassification splits the fused in_proj into
    query/key/value Linear layers; everything else is a rename."""
    m = {
        "conv_proj.weight": "vit.embeddings.patch_embeddings.projection.weight",
        "conv_proj.bias": "vit.embeddings.patch_embeddings.projection.bias",
        "class_token": "vit.embeddings.cls_token",
        "encoder.pos_embedding": "vit.embeddings.position_embeddings",
        "encoder.ln.weight": "vit.layernorm.weight",
        "encoder.ln.bias": "vit.layernorm.bias",
        "heads.head.weight": "classifier.weight",
        "heads.head.bias": "classifier.bias",
    }
    per_block = {
        "ln_1": "layernorm_before",
        "self_attention.out_proj": "attention.output.dense",
        "ln_2": "layernorm_after",
        "mlp.0": "intermediate.dense",
        "mlp.3": "output.dense",
    }
    out = {}
    for k, v in sd.items():
        v = v.detach().clone()
        if k in m:
            out[m[k]] = v
            continue
        prefix = "encoder.layers.encoder_layer_"
        if not k.startswith(prefix):
            raise KeyError(f"no HF name for torchvision key {k}")
        i, rest = k[len(prefix):].split(".", 1)
        dst = f"vit.encoder.layer.{i}."
        if rest.startswith("self_attention.in_proj_"):
            kind = rest.rsplit("_", 1)[1]  # weight | bias
            for j, part in enumerate(("query", "key", "value")):
                out[dst + f"attention.attention.{part}.{kind}"] = v[j * dim:(j + 1) * dim].clone()
            continue
        for a, b in per_block.items():
            if rest.startswith(a + "."):
                out[dst + b + rest[len(a):]] = v
                break
        else:
            raise KeyError(f"no HF name for torchvision key {k}")
    return out


def hf_config(image_size, patch_size, depth, heads, dim, mlp_dim, classes, qkv_bias=True,
              ln_eps=1e-6):
    return {
        "architectures": ["ViTForImageClassification"],
        "model_type": "vit",
        "hidden_size": dim,
        "num_hidden_layers": depth,
        "num_attention_heads": heads,
        "intermediate_size": mlp_dim,
        "image_size": image_size,
        "patch_size": patch_size,
        "num_channels": 3,
        "qkv_bias": qkv_bias,
        "hidden_act": "gelu",
        # These weights were made with torchvision's eps; HF's default (1e-12) would differ.
        "layer_norm_eps": ln_eps,
        "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0,
        "id2label": {str(i): f"LABEL_{i}" for i in range(classes)},
        "label2id": {f"LABEL_{i}": i for i in range(classes)},
    }


def config_json(image_size, patch_size, depth, heads, dim, mlp_dim, classes, qkv_bias=True,
                ln_eps=1e-6, class_token=True, pool="cls", post_norm=False, channels=3):
    """The vit.Config JSON the Go side reads from __metadata__["config"]."""
    return json.dumps({
        "image_size": image_size, "patch_size": patch_size, "channels": channels, "dim": dim,
        "depth": depth, "heads": heads, "mlp_dim": mlp_dim, "classes": classes,
        "qkv_bias": qkv_bias, "ln_eps": ln_eps, "class_token": class_token, "pool": pool,
        "post_norm": post_norm,
    })


def _hf_blocks(out, sd, depth, dim, layer, qkv, qkv_names, block):
    """Every timm block under Hugging Face names: layer is the block's prefix
    (with {i}), the fused qkv rows (q, k, v) become three Linear layers named
    qkv + qkv_names, and block renames the other tensors by prefix."""
    for i in range(depth):
        src, dst = f"blocks.{i}.", layer.format(i=i)
        for kind in ("weight", "bias"):
            if src + "attn.qkv." + kind in sd:
                v = sd[src + "attn.qkv." + kind]
                for j, part in enumerate(qkv_names):
                    out[dst + qkv + part + "." + kind] = v[j * dim:(j + 1) * dim].clone()
        for k, v in sd.items():
            if k.startswith(src) and not k.startswith(src + "attn.qkv."):
                rest = k[len(src):]
                a = next(a for a in block if rest.startswith(a))
                out[dst + block[a] + rest[len(a):]] = v.clone()


def timm_to_hf_dinov2(sd, depth, dim):
    """timm's DINOv2 layout (LayerScale, [CLS], position rows for [CLS] and the
    patches) under Hugging Face Dinov2Model's names (scope "dinov2.", as
    Dinov2ForImageClassification saves it; no classifier: Dinov2Model). The
    mask token exists in every HF file (masked training only)."""
    top = {
        "patch_embed.proj.weight": "embeddings.patch_embeddings.projection.weight",
        "patch_embed.proj.bias": "embeddings.patch_embeddings.projection.bias",
        "cls_token": "embeddings.cls_token",
        "pos_embed": "embeddings.position_embeddings",
        "norm.weight": "layernorm.weight",
        "norm.bias": "layernorm.bias",
    }
    block = {
        "norm1.": "norm1.", "attn.proj.": "attention.output.dense.", "ls1.gamma": "layer_scale1.lambda1",
        "norm2.": "norm2.", "mlp.fc1.": "mlp.fc1.", "mlp.fc2.": "mlp.fc2.", "ls2.gamma": "layer_scale2.lambda1",
    }
    out = {"dinov2.embeddings.mask_token": sd["cls_token"].new_zeros(1, dim)}
    for k, v in sd.items():
        if k in top:
            out["dinov2." + top[k]] = v.clone()
    _hf_blocks(out, sd, depth, dim, "dinov2.encoder.layer.{i}.", "attention.attention.", ("query", "key", "value"), block)
    return out


def timm_to_hf_clip(sd, depth, dim):
    """timm's CLIP tower under Hugging Face CLIPVisionModelWithProjection's
    names. HF's patch embedding has no bias (drop it from sd first), its
    position embedding is an nn.Embedding [tokens, D], the class embedding a
    [D] vector, and the projection visual_projection (no bias)."""
    if "patch_embed.proj.bias" in sd:
        raise ValueError("HF CLIP's patch embedding has no bias")
    d = sd["cls_token"].shape[-1]
    out = {
        "vision_model.embeddings.patch_embedding.weight": sd["patch_embed.proj.weight"].clone(),
        "vision_model.embeddings.class_embedding": sd["cls_token"].reshape(d).clone(),
        "vision_model.embeddings.position_embedding.weight": sd["pos_embed"].reshape(-1, d).clone(),
        "vision_model.pre_layrnorm.weight": sd["norm_pre.weight"].clone(),  # sic: HF's name
        "vision_model.pre_layrnorm.bias": sd["norm_pre.bias"].clone(),
        "vision_model.post_layernorm.weight": sd["norm.weight"].clone(),
        "vision_model.post_layernorm.bias": sd["norm.bias"].clone(),
        "visual_projection.weight": sd["head.weight"].clone(),
    }
    block = {"norm1.": "layer_norm1.", "attn.proj.": "self_attn.out_proj.", "norm2.": "layer_norm2.",
             "mlp.fc1.": "mlp.fc1.", "mlp.fc2.": "mlp.fc2."}
    _hf_blocks(out, sd, depth, dim, "vision_model.encoder.layers.{i}.", "self_attn.", ("q_proj", "k_proj", "v_proj"), block)
    return out
