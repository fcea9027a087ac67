// Package bundle puts together what it takes to analyse images with a model:
// the weights, the preprocessing preset and the class names, whatever the
// source (a file, bytes picked in the browser, or the embedded demo model).
package bundle

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"vitlens/public"
	"vitlens/vit"
	"vitlens/vit/checkpoint"
	"vitlens/vit/preprocess"
)

// Bundle is a loaded model ready to use.
type Bundle struct {
	Model   *vit.Model
	Info    checkpoint.Info
	Preset  preprocess.Preset
	Classes []string // len == Model.Config.Classes
	// PresetSource and ClassesSource say where each choice came from, so
	// `vitlens info`, manifests and the app can show it.
	PresetSource  preprocess.PresetSource
	ClassesSource string
}

// Options choose what the checkpoint does not say.
type Options struct {
	Preset      string // "" = suggested
	ClassesFile string // "" = metadata, bundled ImageNet names, or numbers
	Checkpoint  checkpoint.Options
	// Preprocessor is the text of a Hugging Face preprocessor_config.json;
	// Open reads the one beside the weights when this is nil.
	Preprocessor []byte
	// HeadFile is a class-embedding head file (--head; checkpoint.ReadHead)
	// that becomes the model's classifier, composed with its own head (a
	// CLIP tower's projection). HeadData holds its bytes; Open reads
	// HeadFile when HeadData is nil.
	HeadFile string
	HeadData []byte
}

// PreprocessorFile is the Hugging Face file that describes the pixels a
// model was trained on; read beside the weights, it decides the preset.
const PreprocessorFile = "preprocessor_config.json"

// DemoName is how the embedded demo model is named in messages.
const DemoName = "demo:fmnist-vit"

// Open loads a model file, or the embedded demo model when path is "".
func Open(path string, opt Options) (*Bundle, error) {
	var classesData []byte
	if opt.ClassesFile != "" {
		var err error
		if classesData, err = os.ReadFile(opt.ClassesFile); err != nil {
			return nil, err
		}
	}
	if opt.HeadFile != "" && opt.HeadData == nil {
		var err error
		if opt.HeadData, err = os.ReadFile(opt.HeadFile); err != nil {
			return nil, fmt.Errorf("--head: %w", err)
		}
	}
	if path == "" || path == DemoName {
		data, err := public.Files.ReadFile(public.DemoModel)
		if err != nil {
			return nil, fmt.Errorf("embedded demo model: %w", err)
		}
		return FromBytes(DemoName, data, opt.ClassesFile, classesData, opt)
	}
	m, info, err := checkpoint.Load(path, opt.Checkpoint)
	if err != nil {
		return nil, err
	}
	if opt.Preprocessor == nil {
		b, err := os.ReadFile(filepath.Join(filepath.Dir(path), PreprocessorFile))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%s: %s beside it: %w", path, PreprocessorFile, err)
		}
		opt.Preprocessor = b
	}
	return finish(m, info, opt, classesData)
}

// FromBytes loads a checkpoint held in memory (browser file picker, URL).
func FromBytes(name string, data []byte, classesName string, classesData []byte, opt Options) (*Bundle, error) {
	m, info, err := checkpoint.LoadBytes(name, data, opt.Checkpoint)
	if err != nil {
		return nil, err
	}
	opt.ClassesFile = classesName
	return finish(m, info, opt, classesData)
}

// Demo loads the embedded Fashion-MNIST demo model.
func Demo(opt Options) (*Bundle, error) { return Open("", opt) }

func finish(m *vit.Model, info checkpoint.Info, opt Options, classesData []byte) (*Bundle, error) {
	b := &Bundle{Model: m, Info: info}
	name, src := SuggestPreset(info, opt.Preprocessor)
	if opt.Preset != "" {
		name, src = opt.Preset, preprocess.PresetSource{How: preprocess.PresetGiven, From: "--preset"}
	}
	p, err := preprocess.PresetByName(name)
	if err != nil {
		if opt.Preset != "" {
			return nil, fmt.Errorf("--preset: %w", err)
		}
		return nil, fmt.Errorf("%s: metadata \"preset\": %w", info.Path, err)
	}
	b.Preset, b.PresetSource = p, src
	if m.Config.Channels != 3 {
		return nil, fmt.Errorf("%s: model has %d input channels; presets produce RGB (3)", info.Path, m.Config.Channels)
	}
	var head *checkpoint.ClassHead
	if opt.HeadData != nil {
		if head, err = checkpoint.ReadHead(opt.HeadFile, opt.HeadData); err != nil {
			return nil, err
		}
		if err := checkpoint.ApplyHead(m, head); err != nil {
			return nil, err
		}
	}
	C := m.Config.Classes
	where := "" // the file the names came from, for messages
	switch {
	case opt.ClassesFile != "":
		where = opt.ClassesFile
		names, err := ParseClassNames(where, classesData)
		if err != nil {
			return nil, err
		}
		b.Classes, b.ClassesSource = names, opt.ClassesFile
	case head != nil && head.ClassNames != nil:
		b.Classes, b.ClassesSource = head.ClassNames, opt.HeadFile+` metadata "classes"`
	case head != nil:
		for i := 0; i < C; i++ {
			b.Classes = append(b.Classes, strconv.Itoa(i))
		}
		b.ClassesSource = "class numbers (the head file names none)"
	case info.Metadata["classes"] != "":
		where = info.Path + ` metadata "classes"`
		names, err := ParseClassNames(where, []byte(info.Metadata["classes"]))
		if err != nil {
			return nil, err
		}
		b.Classes, b.ClassesSource = names, "checkpoint metadata"
	case C == 1000:
		where = public.ImageNetClasses
		data, err := fs.ReadFile(public.Files, public.ImageNetClasses)
		if err != nil {
			return nil, err
		}
		b.Classes, _ = ParseClassNames(public.ImageNetClasses, data)
		b.ClassesSource = "bundled ImageNet-1k names"
	default:
		for i := 0; i < C; i++ {
			b.Classes = append(b.Classes, strconv.Itoa(i))
		}
		b.ClassesSource = "class numbers (no names given)"
	}
	if len(b.Classes) != C {
		return nil, fmt.Errorf("%s: %d class names for a model with %d classes", where, len(b.Classes), C)
	}
	return b, nil
}

// SuggestPreset picks the preprocessing from what the checkpoint says, in
// this order: its metadata "preset" (given); a Hugging Face
// preprocessor_config.json beside it that a preset reproduces; a DeiT
// distillation token or head, Hugging Face DeiT names (deit.*) or
// config.json model_type "deit" (the DeiT processor); no qkv bias in a
// [CLS] model (timm's vit_base_patch16_224_miil, the paper's only such
// model: MIIL's transform). Otherwise it assumes the paper's default for
// ImageNet ViTs, google, and says so: callers warn. Hints that do not decide
// the pipeline are not used: torchvision's own weights, for one, were
// trained with a transform no preset reproduces.
func SuggestPreset(info checkpoint.Info, preprocessor []byte) (name string, src preprocess.PresetSource) {
	inferred := func(name, from string) (string, preprocess.PresetSource) {
		return name, preprocess.PresetSource{How: preprocess.PresetInferred, From: from}
	}
	if p := info.Metadata["preset"]; p != "" {
		return p, preprocess.PresetSource{How: preprocess.PresetGiven, From: "checkpoint metadata"}
	}
	var unmatched string
	if preprocessor != nil {
		p, err := preprocess.MatchHFProcessor(preprocessor, info.Config.ImageSize)
		if err == nil {
			return inferred(p.Name, PreprocessorFile+" beside the weights")
		}
		unmatched = fmt.Sprintf("; %s beside the weights matches no preset (%v)", PreprocessorFile, err)
	}
	c := info.Config
	switch {
	case info.Distilled:
		return inferred("deit", "a DeiT distillation token or head in the weights")
	case info.Scope == "deit.":
		return inferred("deit", "Hugging Face DeiT tensor names (deit.*)")
	case info.ModelType == "deit":
		return inferred("deit", `config.json model_type "deit"`)
	case c.ClassToken && !c.QKVBias && !c.PostNorm:
		return inferred("miil", "no qkv bias with a [CLS] token: timm's vit_base_patch16_224_miil (the paper's only such model)")
	}
	return "google", preprocess.PresetSource{How: preprocess.PresetAssumed,
		From: "nothing in the checkpoint says how its images were preprocessed; the paper's default for ImageNet ViTs" + unmatched}
}

// ParseClassNames reads class names from a text file (one per line), a JSON
// list, or a JSON object mapping index to name (Hugging Face id2label, or a
// whole config.json holding one).
func ParseClassNames(name string, data []byte) ([]string, error) {
	names, err := parseClassNames(name, data)
	if err == nil && len(names) == 0 { // "[]" or "{}"
		return nil, fmt.Errorf("%s: no class names", name)
	}
	return names, err
}

func parseClassNames(name string, data []byte) ([]string, error) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return nil, fmt.Errorf("%s: no class names", name)
	}
	switch trimmed[0] {
	case '[':
		var names []string
		if err := json.Unmarshal(trimmed, &names); err != nil {
			return nil, fmt.Errorf("%s: not a JSON list of names: %w", name, err)
		}
		return names, nil
	case '{':
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(trimmed, &obj); err != nil {
			return nil, fmt.Errorf("%s: bad JSON: %w", name, err)
		}
		if inner, ok := obj["id2label"]; ok {
			return parseClassNames(name, inner)
		}
		idx := make(map[int]string, len(obj))
		for k, v := range obj {
			i, err := strconv.Atoi(k)
			if err != nil || i < 0 {
				return nil, fmt.Errorf("%s: key %q is not a class index", name, k)
			}
			var s string
			if err := json.Unmarshal(v, &s); err != nil {
				return nil, fmt.Errorf("%s: class %d: name is not a string", name, i)
			}
			idx[i] = s
		}
		keys := make([]int, 0, len(idx))
		for k := range idx {
			keys = append(keys, k)
		}
		sort.Ints(keys)
		names := make([]string, len(keys))
		for i, k := range keys {
			if k != i {
				return nil, fmt.Errorf("%s: class indices skip %d", name, i)
			}
			names[i] = idx[k]
		}
		return names, nil
	}
	var names []string
	for _, line := range strings.Split(strings.TrimRight(string(data), "\r\n"), "\n") {
		names = append(names, strings.TrimSpace(line))
	}
	return names, nil
}
