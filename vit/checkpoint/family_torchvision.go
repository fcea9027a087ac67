package checkpoint

// torchvision.models.VisionTransformer. in_proj_weight already stacks q, k, v
// rows like timm's qkv. The MLP is nn.Sequential ("mlp.0"/"mlp.3") since
// torchvision 0.12, "mlp.linear_1"/"mlp.linear_2" before. LayerNorm eps 1e-6.
var torchvision = family{
	name:  Torchvision,
	lnEps: 1e-6,
	table: []rename{
		{"conv_proj.weight", "patch_embed.proj.weight", whole},
		{"conv_proj.bias", "patch_embed.proj.bias", whole},
		{"class_token", "cls_token", whole},
		{"encoder.pos_embedding", "pos_embed", whole},
		{"encoder.layers.encoder_layer_{i}.ln_1.weight", "blocks.{i}.norm1.weight", whole},
		{"encoder.layers.encoder_layer_{i}.ln_1.bias", "blocks.{i}.norm1.bias", whole},
		{"encoder.layers.encoder_layer_{i}.self_attention.in_proj_weight", "blocks.{i}.attn.qkv.weight", whole},
		{"encoder.layers.encoder_layer_{i}.self_attention.in_proj_bias", "blocks.{i}.attn.qkv.bias", whole},
		{"encoder.layers.encoder_layer_{i}.self_attention.out_proj.weight", "blocks.{i}.attn.proj.weight", whole},
		{"encoder.layers.encoder_layer_{i}.self_attention.out_proj.bias", "blocks.{i}.attn.proj.bias", whole},
		{"encoder.layers.encoder_layer_{i}.ln_2.weight", "blocks.{i}.norm2.weight", whole},
		{"encoder.layers.encoder_layer_{i}.ln_2.bias", "blocks.{i}.norm2.bias", whole},
		{"encoder.layers.encoder_layer_{i}.mlp.0.weight", "blocks.{i}.mlp.fc1.weight", whole},
		{"encoder.layers.encoder_layer_{i}.mlp.0.bias", "blocks.{i}.mlp.fc1.bias", whole},
		{"encoder.layers.encoder_layer_{i}.mlp.3.weight", "blocks.{i}.mlp.fc2.weight", whole},
		{"encoder.layers.encoder_layer_{i}.mlp.3.bias", "blocks.{i}.mlp.fc2.bias", whole},
		{"encoder.layers.encoder_layer_{i}.mlp.linear_1.weight", "blocks.{i}.mlp.fc1.weight", whole},
		{"encoder.layers.encoder_layer_{i}.mlp.linear_1.bias", "blocks.{i}.mlp.fc1.bias", whole},
		{"encoder.layers.encoder_layer_{i}.mlp.linear_2.weight", "blocks.{i}.mlp.fc2.weight", whole},
		{"encoder.layers.encoder_layer_{i}.mlp.linear_2.bias", "blocks.{i}.mlp.fc2.bias", whole},
		{"encoder.ln.weight", "norm.weight", whole},
		{"encoder.ln.bias", "norm.bias", whole},
		{"heads.head.weight", "head.weight", whole},
		{"heads.head.bias", "head.bias", whole},
	},
}
