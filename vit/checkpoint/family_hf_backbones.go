package checkpoint

import "slices"

// Hugging Face Dinov2Model (and the backbone inside
// Dinov2ForImageClassification, scope "dinov2."): LayerScale's lambda1 is
// timm's gamma; the mask token is for masked training only and is skipped.
// Dinov2Model has no head: its output, the normed [CLS], is the final
// embedding (vit.Config.Classes = dim, an identity head), to be read
// through a --head file. Dinov2ForImageClassification's classifier reads
// concat([CLS], mean of the patch tokens) and is refused (headConcat): no
// linear map of one token reproduces it. Dinov2WithRegisters and the
// SwiGLU MLP of the giant model have other names and are not read.
// LayerNorm eps is 1e-6 (Dinov2Config's) unless config.json says
// layer_norm_eps.
var hfDINOv2 = family{
	name:     HFDINOv2,
	prefixes: []string{"dinov2."},
	lnEps:    1e-6,
	headless: true,
	table: slices.Concat(hfAttention, []rename{
		{"embeddings.patch_embeddings.projection.weight", "patch_embed.proj.weight", whole},
		{"embeddings.patch_embeddings.projection.bias", "patch_embed.proj.bias", whole},
		{"embeddings.cls_token", "cls_token", whole},
		{"embeddings.mask_token", "", skip},
		{"embeddings.position_embeddings", "pos_embed", whole},
		{"encoder.layer.{i}.norm1.weight", "blocks.{i}.norm1.weight", whole},
		{"encoder.layer.{i}.norm1.bias", "blocks.{i}.norm1.bias", whole},
		{"encoder.layer.{i}.layer_scale1.lambda1", "blocks.{i}.ls1.gamma", whole},
		{"encoder.layer.{i}.norm2.weight", "blocks.{i}.norm2.weight", whole},
		{"encoder.layer.{i}.norm2.bias", "blocks.{i}.norm2.bias", whole},
		{"encoder.layer.{i}.mlp.fc1.weight", "blocks.{i}.mlp.fc1.weight", whole},
		{"encoder.layer.{i}.mlp.fc1.bias", "blocks.{i}.mlp.fc1.bias", whole},
		{"encoder.layer.{i}.mlp.fc2.weight", "blocks.{i}.mlp.fc2.weight", whole},
		{"encoder.layer.{i}.mlp.fc2.bias", "blocks.{i}.mlp.fc2.bias", whole},
		{"encoder.layer.{i}.layer_scale2.lambda1", "blocks.{i}.ls2.gamma", whole},
		{"layernorm.weight", "norm.weight", whole},
		{"layernorm.bias", "norm.bias", whole},
		{"classifier.weight", "head.weight", whole}, // [classes, 2·dim]: refused in inferConfig
		{"classifier.bias", "head.bias", whole},
	}),
}

// Hugging Face CLIPVisionModelWithProjection (scope "vision_model."; the
// projection is outside it): HF's patch embedding has no bias, the class
// embedding is a [D] vector, the position embedding an nn.Embedding
// [tokens, D], pre_layrnorm (sic) is timm's norm_pre, post_layernorm the
// final norm on [CLS], and visual_projection the bias-free head that makes
// the embedding, read through a --head file as for timm's CLIP towers.
// position_ids is a buffer some files carry. The activation comes from
// config.json's hidden_act (quick_gelu for OpenAI's weights). LayerNorm eps
// is 1e-5 (CLIPVisionConfig's) unless config.json says layer_norm_eps.
var hfCLIP = family{
	name:     HFCLIP,
	prefixes: []string{"vision_model."},
	lnEps:    1e-5,
	table: []rename{
		{"embeddings.patch_embedding.weight", "patch_embed.proj.weight", whole},
		{"embeddings.class_embedding", "cls_token", whole},
		{"embeddings.position_embedding.weight", "pos_embed", whole},
		{"embeddings.position_ids", "", skip},
		{"pre_layrnorm.weight", "norm_pre.weight", whole},
		{"pre_layrnorm.bias", "norm_pre.bias", whole},
		{"encoder.layers.{i}.layer_norm1.weight", "blocks.{i}.norm1.weight", whole},
		{"encoder.layers.{i}.layer_norm1.bias", "blocks.{i}.norm1.bias", whole},
		{"encoder.layers.{i}.self_attn.q_proj.weight", "blocks.{i}.attn.qkv.weight", q},
		{"encoder.layers.{i}.self_attn.k_proj.weight", "blocks.{i}.attn.qkv.weight", k},
		{"encoder.layers.{i}.self_attn.v_proj.weight", "blocks.{i}.attn.qkv.weight", v},
		{"encoder.layers.{i}.self_attn.q_proj.bias", "blocks.{i}.attn.qkv.bias", q},
		{"encoder.layers.{i}.self_attn.k_proj.bias", "blocks.{i}.attn.qkv.bias", k},
		{"encoder.layers.{i}.self_attn.v_proj.bias", "blocks.{i}.attn.qkv.bias", v},
		{"encoder.layers.{i}.self_attn.out_proj.weight", "blocks.{i}.attn.proj.weight", whole},
		{"encoder.layers.{i}.self_attn.out_proj.bias", "blocks.{i}.attn.proj.bias", whole},
		{"encoder.layers.{i}.layer_norm2.weight", "blocks.{i}.norm2.weight", whole},
		{"encoder.layers.{i}.layer_norm2.bias", "blocks.{i}.norm2.bias", whole},
		{"encoder.layers.{i}.mlp.fc1.weight", "blocks.{i}.mlp.fc1.weight", whole},
		{"encoder.layers.{i}.mlp.fc1.bias", "blocks.{i}.mlp.fc1.bias", whole},
		{"encoder.layers.{i}.mlp.fc2.weight", "blocks.{i}.mlp.fc2.weight", whole},
		{"encoder.layers.{i}.mlp.fc2.bias", "blocks.{i}.mlp.fc2.bias", whole},
		{"post_layernorm.weight", "norm.weight", whole},
		{"post_layernorm.bias", "norm.bias", whole},
		{"visual_projection.weight", "head.weight", whole}, // [projection_dim, D], no bias
	},
}
