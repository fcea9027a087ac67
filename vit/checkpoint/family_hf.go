package checkpoint

import "slices"

// Hugging Face transformers ViTForImageClassification / DeiT. The "vit." or
// "deit." scope is optional; query, key and value are fused into timm's qkv.
// DeiTForImageClassificationWithTeacher's cls_classifier and
// distillation_classifier are timm's head and head_dist. LayerNorm eps is 1e-12
// unless config.json says layer_norm_eps.
var hf = family{
	name:     HF,
	prefixes: []string{"vit.", "deit."},
	lnEps:    1e-12,
	table: slices.Concat(hfAttention, []rename{
		{"embeddings.patch_embeddings.projection.weight", "patch_embed.proj.weight", whole},
		{"embeddings.patch_embeddings.projection.bias", "patch_embed.proj.bias", whole},
		{"embeddings.cls_token", "cls_token", whole},
		{"embeddings.distillation_token", "dist_token", whole},
		{"embeddings.position_embeddings", "pos_embed", whole},
		{"encoder.layer.{i}.layernorm_before.weight", "blocks.{i}.norm1.weight", whole},
		{"encoder.layer.{i}.layernorm_before.bias", "blocks.{i}.norm1.bias", whole},
		{"encoder.layer.{i}.layernorm_after.weight", "blocks.{i}.norm2.weight", whole},
		{"encoder.layer.{i}.layernorm_after.bias", "blocks.{i}.norm2.bias", whole},
		{"encoder.layer.{i}.intermediate.dense.weight", "blocks.{i}.mlp.fc1.weight", whole},
		{"encoder.layer.{i}.intermediate.dense.bias", "blocks.{i}.mlp.fc1.bias", whole},
		{"encoder.layer.{i}.output.dense.weight", "blocks.{i}.mlp.fc2.weight", whole},
		{"encoder.layer.{i}.output.dense.bias", "blocks.{i}.mlp.fc2.bias", whole},
		{"layernorm.weight", "norm.weight", whole},
		{"layernorm.bias", "norm.bias", whole},
		{"classifier.weight", "head.weight", whole},
		{"classifier.bias", "head.bias", whole},
		{"cls_classifier.weight", "head.weight", whole},
		{"cls_classifier.bias", "head.bias", whole},
		{"distillation_classifier.weight", "head_dist.weight", whole},
		{"distillation_classifier.bias", "head_dist.bias", whole},
	}),
}

// hfAttention is the self-attention of transformers' ViT, DeiT and DINOv2
// layers: query, key and value fused into timm's qkv, and the output dense.
var hfAttention = []rename{
	{"encoder.layer.{i}.attention.attention.query.weight", "blocks.{i}.attn.qkv.weight", q},
	{"encoder.layer.{i}.attention.attention.key.weight", "blocks.{i}.attn.qkv.weight", k},
	{"encoder.layer.{i}.attention.attention.value.weight", "blocks.{i}.attn.qkv.weight", v},
	{"encoder.layer.{i}.attention.attention.query.bias", "blocks.{i}.attn.qkv.bias", q},
	{"encoder.layer.{i}.attention.attention.key.bias", "blocks.{i}.attn.qkv.bias", k},
	{"encoder.layer.{i}.attention.attention.value.bias", "blocks.{i}.attn.qkv.bias", v},
	{"encoder.layer.{i}.attention.output.dense.weight", "blocks.{i}.attn.proj.weight", whole},
	{"encoder.layer.{i}.attention.output.dense.bias", "blocks.{i}.attn.proj.bias", whole},
}
