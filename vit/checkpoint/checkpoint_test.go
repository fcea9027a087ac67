package checkpoint

import (
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/nlpodyssey/safetensors"

	"vitlens/vit"
)

// Every family's naming of the same model loads back to identical weights
// and the config it was made with.
func TestFamiliesRoundTrip(t *testing.T) {
	nobias := tinyConfig()
	nobias.QKVBias = false
	gap := tinyConfig()
	gap.ClassToken, gap.Pool, gap.PostNorm = false, vit.PoolMean, true
	odd := vit.Config{ImageSize: 15, PatchSize: 5, Channels: 1, Dim: 128, Depth: 3, Heads: 2, MLPDim: 40,
		Classes: 1, QKVBias: true, LNEps: 1e-6, ClassToken: true, Pool: vit.PoolCLS}
	for _, tc := range []struct {
		name string
		cfg  vit.Config
		fams []Family
	}{
		{"tiny", tinyConfig(), []Family{Timm, HF, Torchvision}},
		{"nobias", nobias, []Family{Timm, HF}}, // torchvision always has in_proj_bias
		{"gap", gap, []Family{Timm}},           // only timm has GAP post-norm models
		{"odd", odd, []Family{Timm, HF, Torchvision}},
	} {
		for _, fam := range tc.fams {
			t.Run(tc.name+"/"+string(fam), func(t *testing.T) {
				want := randomModel(t, tc.cfg)
				file := safetensorsFile(t, exporters[fam](want), nil, safetensors.F32)
				got, info, err := LoadBytes("model.safetensors", file, Options{})
				if err != nil {
					t.Fatal(err)
				}
				cfg := tc.cfg
				if fam == HF {
					cfg.LNEps = 1e-12 // transformers' default without config.json
				}
				if info.Family != fam || info.Format != FormatSafetensors {
					t.Errorf("family %q format %q, want %q safetensors", info.Family, info.Format, fam)
				}
				if got.Config != cfg || info.Config != cfg {
					t.Errorf("config\n got %+v\nwant %+v", got.Config, cfg)
				}
				if info.ConfigSource != SourceInferred+HeadsAssumed {
					t.Errorf("ConfigSource %q", info.ConfigSource)
				}
				sameWeights(t, string(fam), got, want, 0)
			})
		}
	}
}

func TestConfigSources(t *testing.T) {
	c := tinyConfig()
	c.Heads = 4
	m := randomModel(t, c)
	timmFile := func(meta map[string]string) []byte { return safetensorsFile(t, exportTimm(m), meta, safetensors.F32) }
	hfConfig := `{"model_type": "vit", "hidden_size": 64, "num_attention_heads": 4, "layer_norm_eps": 1e-06,
		"image_size": 16, "patch_size": 4, "num_channels": 3, "qkv_bias": true, "hidden_act": "gelu",
		"id2label": {"0": "a", "1": "b", "2": "c", "3": "d", "4": "e"}, "architectures": ["ViTForImageClassification"]}`
	for _, tc := range []struct {
		name       string
		file       []byte
		opt        Options
		wantHeads  int
		wantEps    float32
		wantSource string
		wantErr    string
	}{
		{"metadata", timmFile(map[string]string{"config": configJSON(c)}), Options{}, 4, 1e-6, SourceMetadata, ""},
		{"hf config.json", timmFile(nil), Options{ConfigJSON: []byte(hfConfig)}, 4, 1e-6, SourceConfigJSON, ""},
		{"our config.json", timmFile(nil), Options{ConfigJSON: []byte(`{"heads": 8, "ln_eps": 1e-5}`)}, 8, 1e-5, SourceConfigJSON, ""},
		{"override beats all", timmFile(map[string]string{"config": configJSON(c)}),
			Options{ConfigJSON: []byte(`{"heads": 8}`), Override: &vit.Config{Heads: 16}}, 16, 1e-6, SourceOverride, ""},
		{"default", timmFile(nil), Options{}, 1, 1e-6, SourceInferred + HeadsAssumed, ""},
		{"unrelated config.json", timmFile(nil), Options{ConfigJSON: []byte(`{"foo": 1}`)}, 1, 1e-6, SourceInferred + HeadsAssumed, ""},
		{"config.json contradicts", timmFile(nil), Options{ConfigJSON: []byte(`{"hidden_size": 32}`)}, 0, 0, "", "config.json says dim = 32 but the tensors give 64"},
		{"override contradicts", timmFile(nil), Options{Override: &vit.Config{Classes: 7}}, 0, 0, "", "override says classes = 7 but the tensors give 5"},
		{"heads do not divide", timmFile(nil), Options{Override: &vit.Config{Heads: 5}}, 0, 0, "", "heads 5 does not divide dim 64"},
		{"bad json", timmFile(nil), Options{ConfigJSON: []byte(`{"heads": `)}, 0, 0, "", "config.json is not a JSON object"},
		{"bad activation", timmFile(nil), Options{ConfigJSON: []byte(`{"hidden_act": "relu"}`)}, 0, 0, "", "config.json: hidden_act: unknown activation \"relu\" (want gelu, gelu_tanh or quick_gelu)"},
		// heads 0 must not pass for "not given" (one head assumed).
		{"heads 0 in config.json", timmFile(nil), Options{ConfigJSON: []byte(`{"heads": 0}`)}, 0, 0, "", "config.json: heads 0: must be at least 1"},
		{"HF heads 0", timmFile(nil), Options{ConfigJSON: []byte(`{"num_attention_heads": 0}`)}, 0, 0, "", "num_attention_heads 0: must be at least 1"},
		{"heads 0 in metadata", timmFile(map[string]string{"config": `{"heads": 0}`}), Options{}, 0, 0, "", `metadata "config": heads 0: must be at least 1`},
		// A --config file is named as given, not as "config.json".
		{"named config", timmFile(nil), Options{ConfigJSON: []byte(`{"hidden_size": 32}`), ConfigName: "my/cfg.json"}, 0, 0, "", "my/cfg.json says dim = 32"},
		{"named config, bad json", timmFile(nil), Options{ConfigJSON: []byte(`{`), ConfigName: "my/cfg.json"}, 0, 0, "", "my/cfg.json is not a JSON object"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, info, err := LoadBytes("m.safetensors", tc.file, tc.opt)
			if tc.wantErr != "" {
				mustContain(t, err, "m.safetensors: ", tc.wantErr)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Config.Heads != tc.wantHeads || got.Config.LNEps != tc.wantEps || info.ConfigSource != tc.wantSource {
				t.Errorf("heads %d eps %g source %q, want %d %g %q", got.Config.Heads, got.Config.LNEps, info.ConfigSource, tc.wantHeads, tc.wantEps, tc.wantSource)
			}
		})
	}
}

// Load reads config.json beside the weights (the Hugging Face layout).
func TestLoadReadsConfigBeside(t *testing.T) {
	c := tinyConfig()
	c.Heads = 2
	m := randomModel(t, c)
	dir := t.TempDir()
	path := filepath.Join(dir, "model.safetensors")
	write := func(name string, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("model.safetensors", safetensorsFile(t, exportHF(m), nil, safetensors.F32))
	write("config.json", []byte(`{"num_attention_heads": 2, "layer_norm_eps": 1e-6}`))
	got, info, err := Load(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Config != c || info.ConfigSource != SourceConfigJSON || info.Path != path {
		t.Errorf("config %+v source %q path %q", got.Config, info.ConfigSource, info.Path)
	}
	sameWeights(t, "hf", got, m, 0)
	_, _, err = Load(filepath.Join(dir, "absent.safetensors"), Options{})
	mustContain(t, err, "absent.safetensors")
}

func TestPrefixesAreStripped(t *testing.T) {
	m := randomModel(t, tinyConfig())
	for _, prefix := range []string{"module.", "model.", "module.model."} {
		ts := tensorSet{}
		for name, x := range exportTimm(m) {
			ts[prefix+name] = x
		}
		got, _, err := FromTensors("x.pth", ts, nil, Options{})
		if err != nil {
			t.Fatal(prefix, err)
		}
		sameWeights(t, prefix, got, m, 0)
	}
	// HF's optional "vit." scope, and the "deit." one; Info.Scope says which
	// (a hint of the preprocessing).
	for _, scope := range []string{"", "deit."} {
		ts := tensorSet{}
		for name, x := range exportHF(m) {
			ts[scope+strings.TrimPrefix(name, "vit.")] = x
		}
		if _, info, err := FromTensors("x", ts, nil, Options{}); err != nil || info.Family != HF || info.Scope != scope {
			t.Fatal(info.Family, info.Scope, err)
		}
	}
	_, info, err := FromTensors("x", exportHF(m), nil, Options{ConfigJSON: []byte(`{"model_type": "deit"}`)})
	if err != nil || info.Scope != "vit." || info.ModelType != "deit" || info.Distilled {
		t.Fatalf("scope %q, model type %q, distilled %v: %v", info.Scope, info.ModelType, info.Distilled, err)
	}
}

// Distilled DeiT loads whole: the distillation token and its position row
// are kept, the lens's head is the mean of head and head_dist, and a file
// with only part of the distillation tensors is refused by name.
func TestDistilledDeiT(t *testing.T) {
	m := randomModel(t, tinyConfig())
	d := m.Config.Dim
	ts := exportTimm(m)
	pos := ts["pos_embed"].Data
	distPos := make([]float32, d)
	for i := range distPos {
		distPos[i] = float32(i)
	}
	withDist := append(append(append([]float32{}, pos[:d]...), distPos...), pos[d:]...)
	ts.put("pos_embed", withDist, 1, m.Config.NumTokens()+1, d)
	distTok := make([]float32, d)
	distTok[0] = 3
	ts.put("dist_token", distTok, 1, 1, d)
	other := vit.Linear{In: d, Out: m.Config.Classes, W: make([]float32, len(m.Head.Weights())), B: make([]float32, len(m.Head.B))}
	ts.lin("head_dist", other)

	got, info, err := FromTensors("deit.pth", ts, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !info.Distilled || !got.Config.DistToken || len(info.Ignored) != 0 {
		t.Fatalf("distilled %v, config %+v, ignored %v", info.Distilled, got.Config, info.Ignored)
	}
	if !slices.Equal(got.PosEmbed, withDist) || !slices.Equal(got.DistToken, distTok) {
		t.Error("position embedding or distillation token not kept as in the file")
	}
	for i, w := range got.Head.Weights() {
		if w != m.Head.Weights()[i]/2 {
			t.Fatalf("head.weight[%d] = %g, want the mean of head and head_dist %g", i, w, m.Head.Weights()[i]/2)
		}
	}
	if !slices.Equal(got.HeadCLS.Weights(), m.Head.Weights()) || !slices.Equal(got.HeadDist.Weights(), other.W) {
		t.Error("the two heads are not kept for the model's output")
	}

	delete(ts, "head_dist.bias")
	_, _, err = FromTensors("deit.pth", ts, nil, Options{NonStrict: true})
	mustContain(t, err, "deit.pth: ", "missing 1 tensors: head_dist.bias")
}

// The paper's DeiT refinement checkpoint carries extra heads that strict
// loading names and NonStrict skips.
func TestNonStrictSkipsUnknown(t *testing.T) {
	m := randomModel(t, tinyConfig())
	ts := exportTimm(m)
	ts.put("trans_cls_head.0.weight", []float32{1, 2}, 2)
	ts.put("module.aux.bias", []float32{1}, 1)
	_, _, err := FromTensors("trm.pth", ts, nil, Options{})
	mustContain(t, err, "trm.pth: ", "2 unexpected tensors", "module.aux.bias, trans_cls_head.0.weight")
	got, info, err := FromTensors("trm.pth", ts, nil, Options{NonStrict: true})
	if err != nil {
		t.Fatal(err)
	}
	sameWeights(t, "nonstrict", got, m, 0)
	if !slices.Equal(info.Ignored, []string{"module.aux.bias", "trans_cls_head.0.weight"}) {
		t.Errorf("Ignored %v", info.Ignored)
	}
}

// Half, bfloat16 and double files widen to the same float32 weights.
func TestDtypes(t *testing.T) {
	m := randomModel(t, tinyConfig())
	for _, s := range weights(m) {
		for i := range s { // k/256, |k| ≤ 128: exact in F16 and BF16
			s[i] = float32(math.Round(math.Max(-0.5, math.Min(0.5, float64(s[i])))*256) / 256)
		}
	}
	for _, dt := range []safetensors.DType{safetensors.F16, safetensors.BF16, safetensors.F64} {
		got, _, err := LoadBytes("m.safetensors", safetensorsFile(t, exportTimm(m), nil, dt), Options{})
		if err != nil {
			t.Fatal(dt, err)
		}
		sameWeights(t, dt.String(), got, m, 0)
	}
}

// HalfToFloat against the IEEE 754 definition, for all 65536 values.
func TestHalfToFloatExhaustive(t *testing.T) {
	for h := 0; h < 1<<16; h++ {
		sign := 1.0
		if h&0x8000 != 0 {
			sign = -1
		}
		e, f := (h>>10)&0x1f, float64(h&0x3ff)
		var want float64
		switch e {
		case 0:
			want = sign * math.Ldexp(f/1024, -14)
		case 31:
			want = math.Inf(int(sign))
			if f != 0 {
				want = math.NaN()
			}
		default:
			want = sign * math.Ldexp(1+f/1024, e-15)
		}
		got := float64(HalfToFloat(uint16(h)))
		if got != want && !(math.IsNaN(got) && math.IsNaN(want)) || math.Signbit(got) != math.Signbit(want) && !math.IsNaN(want) {
			t.Fatalf("HalfToFloat(%#04x) = %g, want %g", h, got, want)
		}
	}
}

// ReadTensors hands back the raw tensors with torch shapes and the metadata.
func TestReadTensors(t *testing.T) {
	m := randomModel(t, tinyConfig())
	file := safetensorsFile(t, exportHF(m), map[string]string{"format": "pt"}, safetensors.F32)
	ts, meta, format, err := ReadTensors("m.safetensors", file)
	if err != nil {
		t.Fatal(err)
	}
	q := ts["vit.encoder.layer.1.attention.attention.query.weight"]
	if format != FormatSafetensors || meta["format"] != "pt" || !slices.Equal(q.Shape, []int{64, 64}) {
		t.Errorf("format %q meta %v shape %v", format, meta, q.Shape)
	}
	if len(ts) != len(exportHF(m)) {
		t.Errorf("%d tensors, want %d", len(ts), len(exportHF(m)))
	}
}

// LayerScale is all-or-nothing per checkpoint and folds into pre-norm
// sublayers only; a register tensor must be [1, R, D]; the file's tensors
// are not changed by the fold.
func TestLayerScaleAndRegisters(t *testing.T) {
	m := randomModel(t, tinyConfig())
	d := m.Config.Dim
	ts := exportTimm(m)
	for i := range m.Config.Depth {
		g := make([]float32, d)
		for j := range g {
			g[j] = 0.5
		}
		ts.put(fmt.Sprintf("blocks.%d.ls1.gamma", i), g, d)
		ts.put(fmt.Sprintf("blocks.%d.ls2.gamma", i), g, d)
	}
	proj := slices.Clone(ts["blocks.0.attn.proj.weight"].Data)
	got, _, err := FromTensors("ls.pth", ts, nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Blocks[0].Proj.At(0, 0) != proj[0]/2 || got.Blocks[1].FC2.B[3] != m.Blocks[1].FC2.B[3]/2 {
		t.Error("gamma not folded into attn.proj / mlp.fc2")
	}
	if !slices.Equal(ts["blocks.0.attn.proj.weight"].Data, proj) {
		t.Error("the fold changed the caller's tensor")
	}

	partial := maps.Clone(ts)
	delete(partial, "blocks.1.ls2.gamma")
	_, _, err = FromTensors("ls.pth", partial, nil, Options{})
	mustContain(t, err, "ls.pth: ", "missing 1 tensors: blocks.1.ls2.gamma")

	regs := maps.Clone(ts)
	regs.put("reg_token", make([]float32, 3*d), 1, 3, d)
	_, _, err = FromTensors("reg.pth", regs, nil, Options{})
	mustContain(t, err, "reg.pth: ", "has 13 patch positions (after 4 special tokens)")
	regs.put("reg_token", make([]float32, 3*d+1), 3*d+1)
	_, _, err = FromTensors("reg.pth", regs, nil, Options{})
	mustContain(t, err, "reg.pth: ", "reg_token has shape", "want [1, registers, ")
}
