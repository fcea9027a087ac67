package checkpoint

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"

	"vitlens/vit"
)

// jsonKeys maps the config.json keys we understand onto vit.Config's json
// tags: our own keys map to themselves, Hugging Face's ViTConfig keys to
// ours. id2label and hidden_act are handled apart.
var jsonKeys = map[string]string{
	"image_size": "image_size", "patch_size": "patch_size", "channels": "channels",
	"dim": "dim", "depth": "depth", "heads": "heads", "mlp_dim": "mlp_dim",
	"classes": "classes", "qkv_bias": "qkv_bias", "ln_eps": "ln_eps",
	"class_token": "class_token", "pool": "pool", "post_norm": "post_norm",
	"dist_token": "dist_token", "registers": "registers",

	"num_channels": "channels", "hidden_size": "dim", "num_hidden_layers": "depth",
	"num_attention_heads": "heads", "intermediate_size": "mlp_dim",
	"layer_norm_eps": "ln_eps", "num_labels": "classes", "num_classes": "classes",
}

// freeFields are not given by the tensors, so a source may set them to
// anything; every other field a source gives must agree with the tensors.
// image_size may differ from the position embedding's: it is then resized
// (timm's resample_abs_pos_embed).
var freeFields = map[string]bool{"heads": true, "ln_eps": true, "post_norm": true, "act": true, "image_size": true}

// partial is the fields one source gives, by json tag.
type partial struct {
	source string // a Source* constant, for Info.ConfigSource
	name   string // the file or entry, for messages
	cfg    vit.Config
	set    map[string]bool
	// actFrom says how this source gave "act": its own key, or the rule
	// that read it off a timm architecture name (Info.ActSource).
	actFrom string
}

// timmActivation reads the MLP activation off a timm model name
// (config.json's "architecture", with pretrained_cfg's "tag" after a dot,
// e.g. vit_base_patch16_clip_224.openai). It returns the activation and the
// rule in words, or "" when no rule knows the name: the activation is then
// left to the other sources, never guessed.
func timmActivation(name string) (vit.Activation, string) {
	arch, tag, _ := strings.Cut(name, ".")
	if !strings.HasPrefix(arch, "vit_") && !strings.HasPrefix(arch, "deit") {
		return "", "" // not one of timm's ViTs
	}
	switch {
	case strings.Contains(arch, "_quickgelu"):
		return vit.ActQuickGELU, "timm builds *_quickgelu_* models with QuickGELU"
	case strings.Contains(arch, "_clip_") && (tag == "openai" || strings.HasPrefix(tag, "metaclip")):
		// timm runs these weights under exact GELU unless the name says
		// _quickgelu; the weights themselves were trained with QuickGELU.
		return vit.ActQuickGELU, "OpenAI's and MetaCLIP's CLIP weights were trained with QuickGELU"
	case strings.Contains(arch, "_siglip"):
		return vit.ActGELUTanh, "timm builds SigLIP towers with the tanh GELU"
	}
	return vit.ActGELU, "timm's ViTs use exact GELU unless the name says otherwise"
}

// parseConfigJSON reads a config.json (Hugging Face's or ours) or the
// safetensors metadata "config" entry; source names it in messages.
func parseConfigJSON(source string, b []byte) (partial, error) {
	p := partial{source: source, name: source, set: map[string]bool{}}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return p, fmt.Errorf("%s is not a JSON object: %v", source, err)
	}
	fields := fieldsByTag(&p.cfg)
	var arch, weightsTag string
	for _, key := range sortedKeys(raw) {
		msg := raw[key]
		switch key {
		case "architecture": // timm's hub config.json (Hugging Face's is "architectures", a list)
			if err := json.Unmarshal(msg, &arch); err != nil {
				return p, fmt.Errorf("%s: architecture %s is not a string", source, msg)
			}
			continue
		case "pretrained_cfg":
			var pc struct {
				Tag string `json:"tag"`
			}
			if err := json.Unmarshal(msg, &pc); err != nil {
				return p, fmt.Errorf("%s: pretrained_cfg: %v", source, err)
			}
			weightsTag = pc.Tag
			continue
		case "id2label":
			var labels map[string]json.RawMessage
			if err := json.Unmarshal(msg, &labels); err != nil {
				return p, fmt.Errorf("%s: id2label: %v", source, err)
			}
			if !p.set["classes"] {
				p.cfg.Classes, p.set["classes"] = len(labels), true
			}
			continue
		case "hidden_act", "act":
			var name string
			if err := json.Unmarshal(msg, &name); err != nil {
				return p, fmt.Errorf("%s: %s %s is not a string", source, key, msg)
			}
			act, err := vit.ParseActivation(name)
			if err != nil {
				return p, fmt.Errorf("%s: %s: %v", source, key, err)
			}
			p.cfg.Act, p.set["act"] = act, true
			p.actFrom = fmt.Sprintf("%s: %s %q", source, key, name)
			continue
		case "image_size", "patch_size":
			// Hugging Face allows [h, w]; only square is supported.
			var hw []int
			if json.Unmarshal(msg, &hw) == nil {
				if len(hw) != 2 || hw[0] != hw[1] {
					return p, fmt.Errorf("%s: %s %s is not square", source, key, msg)
				}
				msg, _ = json.Marshal(hw[0])
			}
		}
		tag, ok := jsonKeys[key]
		if !ok {
			continue // other keys (architectures, id2label's text, ...) do not matter here
		}
		if err := json.Unmarshal(msg, fields[tag].Addr().Interface()); err != nil {
			return p, fmt.Errorf("%s: %s: %v", source, key, err)
		}
		// Zero would read as "not given" and the head count would be
		// assumed instead: a file that says 0 heads is wrong, not silent.
		if tag == "heads" && p.cfg.Heads < 1 {
			return p, fmt.Errorf("%s: %s %d: must be at least 1 (leave the key out to have it inferred)", source, key, p.cfg.Heads)
		}
		p.set[tag] = true
	}
	// An explicit act wins over the architecture name.
	if arch != "" && !p.set["act"] {
		name := arch
		if weightsTag != "" && !strings.Contains(arch, ".") {
			name += "." + weightsTag
		}
		if act, rule := timmActivation(name); act != "" {
			p.cfg.Act, p.set["act"] = act, true
			p.actFrom = fmt.Sprintf("%s: timm architecture %s (%s)", source, name, rule)
		}
	}
	return p, nil
}

func fieldsByTag(c *vit.Config) map[string]reflect.Value {
	v := reflect.ValueOf(c).Elem()
	out := map[string]reflect.Value{}
	for i := 0; i < v.NumField(); i++ {
		tag, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("json"), ",")
		out[tag] = v.Field(i)
	}
	return out
}

// mergeConfig applies, weakest first, the safetensors metadata "config",
// config.json and Options.Override over the inferred config, then defaults
// the head count to dim/64 (right for every standard ViT: tiny 192/3, small
// 384/6, base 768/12, large 1024/16, huge 1280/16).
func mergeConfig(inferred vit.Config, meta map[string]string, opt Options) (cfg vit.Config, from, actFrom string, err error) {
	var sources []partial
	if s, ok := meta["config"]; ok {
		p, err := parseConfigJSON("safetensors metadata \"config\"", []byte(s))
		if err != nil {
			return inferred, "", "", err
		}
		p.source = SourceMetadata
		p.name = "its metadata \"config\""
		sources = append(sources, p)
	}
	if opt.ConfigJSON != nil {
		name := opt.ConfigName
		if name == "" {
			name = SourceConfigJSON
		}
		p, err := parseConfigJSON(name, opt.ConfigJSON)
		if err != nil {
			return inferred, "", "", err
		}
		p.source = SourceConfigJSON
		sources = append(sources, p)
	}
	if o := opt.Override; o != nil {
		p := partial{source: SourceOverride, name: "the override", cfg: *o, set: map[string]bool{}, actFrom: "the override"}
		for tag, f := range fieldsByTag(&p.cfg) {
			if !f.IsZero() {
				p.set[tag] = true
			}
		}
		sources = append(sources, p)
	}

	cfg, from = inferred, SourceInferred
	actFrom = "no config says it: exact GELU, timm's default"
	shapes := fieldsByTag(&inferred)
	fields := fieldsByTag(&cfg)
	for _, p := range sources {
		given := fieldsByTag(&p.cfg)
		tags := sortedKeys(p.set)
		for _, tag := range tags {
			val := given[tag]
			if !freeFields[tag] && !reflect.DeepEqual(val.Interface(), shapes[tag].Interface()) {
				return cfg, "", "", fmt.Errorf("%s says %s = %v but the tensors give %v", p.name, tag, val.Interface(), shapes[tag].Interface())
			}
			fields[tag].Set(val)
			if tag == "act" {
				actFrom = p.actFrom
			}
		}
		if len(tags) > 0 {
			from = p.source
		}
	}
	if cfg.Heads == 0 {
		if cfg.Dim%64 != 0 {
			return cfg, "", "", &HeadsUnknownError{Dim: cfg.Dim}
		}
		cfg.Heads = cfg.Dim / 64
		from += HeadsAssumed
	}
	if cfg.Dim%cfg.Heads != 0 {
		return cfg, "", "", fmt.Errorf("heads %d does not divide dim %d", cfg.Heads, cfg.Dim)
	}
	if err := cfg.Validate(); err != nil {
		return cfg, "", "", fmt.Errorf("config invalid: %s", strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	return cfg, from, actFrom, nil
}
