package checkpoint

// timm's VisionTransformer names are the canonical ones, so each row maps a
// name to itself; the table is also the list of every tensor we read.
// dist_token and head_dist belong to distilled DeiT (vit.Config.DistToken),
// reg_token to ViTs with registers, ls1/ls2 to LayerScale (DeiT-III, DINOv2).
var timm = family{
	name:  Timm,
	lnEps: 1e-6,
	table: []rename{
		{"patch_embed.proj.weight", "patch_embed.proj.weight", whole}, // [D, C, P, P]
		{"patch_embed.proj.bias", "patch_embed.proj.bias", whole},
		{"cls_token", "cls_token", whole}, // [1, 1, D]
		{"dist_token", "dist_token", whole},
		{"reg_token", "reg_token", whole},             // [1, R, D]
		{"pos_embed", "pos_embed", whole},             // [1, T, D]
		{"norm_pre.weight", "norm_pre.weight", whole}, // CLIP's ln_pre
		{"norm_pre.bias", "norm_pre.bias", whole},
		{"blocks.{i}.norm1.weight", "blocks.{i}.norm1.weight", whole},
		{"blocks.{i}.norm1.bias", "blocks.{i}.norm1.bias", whole},
		{"blocks.{i}.attn.qkv.weight", "blocks.{i}.attn.qkv.weight", whole}, // [3D, D], rows q, k, v
		{"blocks.{i}.attn.qkv.bias", "blocks.{i}.attn.qkv.bias", whole},
		{"blocks.{i}.attn.proj.weight", "blocks.{i}.attn.proj.weight", whole},
		{"blocks.{i}.attn.proj.bias", "blocks.{i}.attn.proj.bias", whole},
		{"blocks.{i}.norm2.weight", "blocks.{i}.norm2.weight", whole},
		{"blocks.{i}.norm2.bias", "blocks.{i}.norm2.bias", whole},
		{"blocks.{i}.mlp.fc1.weight", "blocks.{i}.mlp.fc1.weight", whole}, // [M, D]
		{"blocks.{i}.mlp.fc1.bias", "blocks.{i}.mlp.fc1.bias", whole},
		{"blocks.{i}.mlp.fc2.weight", "blocks.{i}.mlp.fc2.weight", whole},
		{"blocks.{i}.mlp.fc2.bias", "blocks.{i}.mlp.fc2.bias", whole},
		{"blocks.{i}.ls1.gamma", "blocks.{i}.ls1.gamma", whole}, // LayerScale [D], folded into attn.proj
		{"blocks.{i}.ls2.gamma", "blocks.{i}.ls2.gamma", whole}, // and into mlp.fc2
		{"norm.weight", "norm.weight", whole},                   // before CLS pooling
		{"norm.bias", "norm.bias", whole},
		{"fc_norm.weight", "fc_norm.weight", whole}, // after mean pooling
		{"fc_norm.bias", "fc_norm.bias", whole},
		{"head.weight", "head.weight", whole}, // [classes, D]; CLIP towers: the projection [E, D], maybe without bias
		{"head.bias", "head.bias", whole},
		{"head_dist.weight", "head_dist.weight", whole},
		{"head_dist.bias", "head_dist.bias", whole},
	},
}
