package checkpoint

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"vitlens/vit"
)

// The shared reference fixtures (tools/reference/make_golden.py) hold one
// random model per directory in every family that can express it; all must
// load to identical weights and to the config recorded in golden.safetensors.
func TestReferenceFixtures(t *testing.T) {
	root := "../../testdata/reference"
	for _, fixture := range []string{"tiny", "odd", "nobias", "gap", "deit_dist", "ls_reg"} {
		t.Run(fixture, func(t *testing.T) {
			dir := filepath.Join(root, fixture)
			_, meta, _, err := readFile(filepath.Join(dir, "golden.safetensors"))
			if os.IsNotExist(err) {
				t.Skip("fixture not generated: run tools/reference/make_golden.py")
			}
			if err != nil {
				t.Fatal(err)
			}
			var want vit.Config
			if err := json.Unmarshal([]byte(meta["config"]), &want); err != nil {
				t.Fatal(err)
			}
			var first *vit.Model
			loaded := 0
			for _, f := range []struct {
				file   string
				family Family
				format string
			}{
				{"timm.safetensors", Timm, FormatSafetensors},
				{"torchvision.safetensors", Torchvision, FormatSafetensors},
				{"torchvision.pth", Torchvision, FormatPyTorch},
				{"hf/model.safetensors", HF, FormatSafetensors}, // heads and eps from hf/config.json
			} {
				path := filepath.Join(dir, f.file)
				if _, err := os.Stat(path); err != nil {
					continue
				}
				opt := Options{}
				if f.family != HF {
					opt.Override = &vit.Config{Heads: want.Heads} // not in the tensors
				}
				m, info, err := Load(path, opt)
				if err != nil {
					t.Fatal(err)
				}
				loaded++
				if m.Config != want || info.Family != f.family || info.Format != f.format {
					t.Errorf("%s: config %+v family %s format %s, want %+v %s %s", f.file, m.Config, info.Family, info.Format, want, f.family, f.format)
				}
				if first == nil {
					first = m
				} else {
					sameWeights(t, f.file, m, first, 0)
				}
			}
			if loaded == 0 {
				t.Fatal("no checkpoint in", dir)
			}
		})
	}
}

func readFile(path string) (map[string]*vit.Tensor, map[string]string, string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, "", err
	}
	return ReadTensors(path, b)
}
