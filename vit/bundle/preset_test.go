package bundle

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"vitlens/vit"
	"vitlens/vit/checkpoint"
	"vitlens/vit/preprocess"
)

// Each hint in the weights picks its preset and says so; a checkpoint that
// says nothing gets google, marked assumed.
func TestSuggestPreset(t *testing.T) {
	base := vit.Config{ImageSize: 224, ClassToken: true, QKVBias: true, Pool: vit.PoolCLS}
	noBias := base
	noBias.QKVBias = false
	gap := noBias
	gap.ClassToken, gap.PostNorm, gap.Pool = false, true, vit.PoolMean
	deitHF := []byte(`{"crop_size": 224, "do_center_crop": true, "do_normalize": true, "do_resize": true,
		"image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225], "resample": 3, "size": 256}`)
	googleHF := []byte(`{"do_normalize": true, "do_resize": true, "image_mean": [0.5, 0.5, 0.5],
		"image_std": [0.5, 0.5, 0.5], "resample": 2, "rescale_factor": 0.00392156862745098, "size": {"height": 224, "width": 224}}`)
	torchvisionLike := []byte(`{"do_resize": true, "size": {"shortest_edge": 256}, "do_center_crop": true, "crop_size": 224,
		"image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225], "resample": 2}`)
	for _, c := range []struct {
		what         string
		info         checkpoint.Info
		preprocessor []byte
		want, how    string
		from         string
	}{
		{"metadata", checkpoint.Info{Config: noBias, Metadata: map[string]string{"preset": "cifar"}}, deitHF, "cifar", preprocess.PresetGiven, "metadata"},
		{"HF DeiT processor", checkpoint.Info{Config: base}, deitHF, "deit", preprocess.PresetInferred, "preprocessor_config.json"},
		{"HF google processor beats no qkv bias", checkpoint.Info{Config: noBias}, googleHF, "google", preprocess.PresetInferred, "preprocessor_config.json"},
		{"unmatched processor", checkpoint.Info{Config: base}, torchvisionLike, "google", preprocess.PresetAssumed, "matches no preset"},
		{"distilled", checkpoint.Info{Config: base, Distilled: true}, nil, "deit", preprocess.PresetInferred, "distillation"},
		{"deit names", checkpoint.Info{Config: base, Family: checkpoint.HF, Scope: "deit."}, nil, "deit", preprocess.PresetInferred, "deit.*"},
		{"deit model type", checkpoint.Info{Config: base, Family: checkpoint.HF, Scope: "vit.", ModelType: "deit"}, nil, "deit", preprocess.PresetInferred, "model_type"},
		{"no qkv bias", checkpoint.Info{Config: noBias}, nil, "miil", preprocess.PresetInferred, "qkv bias"},
		{"GAP without qkv bias (vit_gap_16)", checkpoint.Info{Config: gap}, nil, "google", preprocess.PresetAssumed, "nothing"},
		{"HF vit names", checkpoint.Info{Config: base, Family: checkpoint.HF, Scope: "vit.", ModelType: "vit"}, nil, "google", preprocess.PresetAssumed, "nothing"},
		{"torchvision", checkpoint.Info{Config: base, Family: checkpoint.Torchvision}, nil, "google", preprocess.PresetAssumed, "nothing"},
	} {
		name, src := SuggestPreset(c.info, c.preprocessor)
		if name != c.want || src.How != c.how || !strings.Contains(src.From, c.from) {
			t.Errorf("%s: %s (%s), want %s (%s: ...%s...)", c.what, name, src, c.want, c.how, c.from)
		}
	}
}

// Open reads preprocessor_config.json beside the weights; --preset wins.
func TestOpenInfersPreset(t *testing.T) {
	ref := filepath.Join("..", "..", "testdata", "reference")
	b, err := Open(filepath.Join(ref, "nobias", "timm.safetensors"), Options{Checkpoint: checkpoint.Options{Override: &vit.Config{Heads: 2}}})
	if err != nil {
		t.Fatal(err)
	}
	if b.Preset.Name != "miil" || b.PresetSource.How != preprocess.PresetInferred {
		t.Fatalf("nobias: %s (%s)", b.Preset.Name, b.PresetSource)
	}
	dir := t.TempDir()
	data, err := os.ReadFile(filepath.Join(ref, "tiny", "timm.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "model.safetensors")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	opt := Options{Checkpoint: checkpoint.Options{Override: &vit.Config{Heads: 2}}}
	if b, err = Open(path, opt); err != nil || b.PresetSource.How != preprocess.PresetAssumed || b.Preset.Name != "google" {
		t.Fatalf("tiny alone: %v %s (%s)", err, b.Preset.Name, b.PresetSource)
	}
	// The tiny model is 32×32: DeiT's processor for it resizes to 37 (256/224) and crops 32.
	hf := `{"do_center_crop": true, "crop_size": {"height": 32, "width": 32}, "size": {"height": 37, "width": 37},
		"resample": 3, "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]}`
	if err := os.WriteFile(filepath.Join(dir, PreprocessorFile), []byte(hf), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err = Open(path, opt); err != nil || b.Preset.Name != "deit" || b.PresetSource.How != preprocess.PresetInferred {
		t.Fatalf("tiny with a DeiT processor: %v %s (%s)", err, b.Preset.Name, b.PresetSource)
	}
	opt.Preset = "google"
	if b, err = Open(path, opt); err != nil || b.Preset.Name != "google" || b.PresetSource.String() != "given: --preset" {
		t.Fatalf("--preset: %v %s (%s)", err, b.Preset.Name, b.PresetSource)
	}
}
