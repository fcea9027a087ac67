package checkpoint

import (
	"strings"
	"testing"

	"vitlens/vit"
)

// The activation read off a timm architecture name: each rule names itself,
// an explicit act in the same file or a later source wins, and an unknown
// name decides nothing.
func TestActivationFromTimmArchitecture(t *testing.T) {
	inferred := tinyConfig()
	for _, tc := range []struct {
		name, json string
		override   vit.Activation
		want       vit.Activation
		from       string
	}{
		{"openai tag", `{"architecture": "vit_base_patch16_clip_224", "pretrained_cfg": {"tag": "openai"}}`, "", vit.ActQuickGELU,
			"timm architecture vit_base_patch16_clip_224.openai (OpenAI's and MetaCLIP's CLIP weights were trained with QuickGELU)"},
		{"name with tag", `{"architecture": "vit_base_patch16_clip_224.metaclip_2pt5b"}`, "", vit.ActQuickGELU, "vit_base_patch16_clip_224.metaclip_2pt5b"},
		{"laion2b", `{"architecture": "vit_base_patch16_clip_224", "pretrained_cfg": {"tag": "laion2b_s34b_b88k"}}`, "", "",
			"timm architecture vit_base_patch16_clip_224.laion2b_s34b_b88k (timm's ViTs use exact GELU unless the name says otherwise)"},
		{"quickgelu", `{"architecture": "vit_large_patch14_clip_quickgelu_224"}`, "", vit.ActQuickGELU, "timm builds *_quickgelu_*"},
		{"siglip", `{"architecture": "vit_base_patch16_siglip_224"}`, "", vit.ActGELUTanh, "SigLIP"},
		{"explicit act wins", `{"architecture": "vit_base_patch16_clip_224", "pretrained_cfg": {"tag": "openai"}, "act": "gelu"}`, "", "", `config.json: act "gelu"`},
		{"override wins", `{"architecture": "vit_base_patch16_clip_224.openai"}`, vit.ActGELUTanh, vit.ActGELUTanh, "the override"},
		{"unknown name", `{"architecture": "my_clip_tower.openai"}`, "", "", "no config says it"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opt := Options{ConfigJSON: []byte(tc.json), ConfigName: "config.json"}
			if tc.override != "" {
				opt.Override = &vit.Config{Act: tc.override}
			}
			cfg, _, from, err := mergeConfig(inferred, nil, opt)
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.Act; got != tc.want && !(got == vit.ActGELU && tc.want == "") {
				t.Errorf("act %q, want %q", got, tc.want)
			}
			if !strings.Contains(from, tc.from) {
				t.Errorf("activation from %q, want it to say %q", from, tc.from)
			}
		})
	}
}
