// Package session is the web app's engine, free of any browser code: it
// loads models and images from bytes, runs the lens with or without an
// intervention on any lens.Backend, and derives what the views show (curves,
// memories, CSV tables, a JSON summary the end-to-end tests compare with the
// native CLI path). Everything here runs and is tested natively.
package session

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"image"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"

	"vitlens/public"
	"vitlens/vit"
	"vitlens/vit/bundle"
	"vitlens/vit/checkpoint"
	"vitlens/vit/preprocess"
)

// MaxImagePixels bounds decoded images in the browser, where a 256 MiB
// RGBA buffer (preprocess.MaxPixels) would already strain a tab: 32 Mi pixels
// still covers a 24 MP phone photo.
const MaxImagePixels = 32 << 20

// LoadOptions are what the user may choose when loading a model.
type LoadOptions struct {
	Preset     string // "" = what the checkpoint suggests
	Heads      int    // 0 = from the checkpoint (or dim/64)
	NonStrict  bool   // skip unknown tensors (e.g. DeiT distillation heads)
	ConfigJSON []byte // a config.json picked beside the weights, or nil
	// HeadName and HeadData are a class-embedding head file ("Load class
	// embeddings", the CLI's --head): safetensors weight [classes, embed],
	// read after the model's final norm and projection; nil for none.
	HeadName string
	HeadData []byte
}

// Model is a loaded bundle plus what the app remembers about it.
type Model struct {
	*bundle.Bundle
	Name  string // file name, URL or bundle.DemoName
	Bytes int    // checkpoint size
	Opt   LoadOptions
	// Params is the parameter count of a weightless copy (Weightless),
	// whose vit.Model holds only the config; 0 on a model with weights.
	// EmbedNormWidth is then the width of Model.Normalize's embedding
	// (0: none). See NumParams.
	Params, EmbedNormWidth int
	// memories caches the top classes of every memory's value vector, per
	// block and layer: computing E·W_out costs a matmul per block.
	memories map[MemoryKey][]int32
}

// LoadDemo loads the Fashion-MNIST demo model from files laid out as
// package public's: natively public.Files, in the browser the copy the
// server publishes under /web/demo/.
func LoadDemo(files fs.FS) (*Model, error) { return LoadDemoWith(files, LoadOptions{}) }

// LoadDemoWith loads the demo model with loading options (a head file).
func LoadDemoWith(files fs.FS, opt LoadOptions) (*Model, error) {
	data, err := fs.ReadFile(files, public.DemoModel)
	if err != nil {
		return nil, fmt.Errorf("demo model: %w", err)
	}
	return LoadModel(bundle.DemoName, data, opt)
}

// LoadModel loads a safetensors or PyTorch checkpoint held in memory.
func LoadModel(name string, data []byte, opt LoadOptions) (*Model, error) {
	bopt := bundle.Options{Preset: opt.Preset, HeadFile: opt.HeadName, HeadData: opt.HeadData,
		Checkpoint: checkpoint.Options{NonStrict: opt.NonStrict, ConfigJSON: opt.ConfigJSON}}
	if opt.Heads > 0 {
		bopt.Checkpoint.Override = &vit.Config{Heads: opt.Heads}
	}
	b, err := bundle.FromBytes(name, data, "", nil, bopt)
	if err != nil {
		return nil, err
	}
	return &Model{Bundle: b, Name: name, Bytes: len(data), Opt: opt}, nil
}

// Weightless is the model as the web page holds it: everything it draws
// (config, class names, preset, where each came from) and none of the
// weights, which stay in the engine that computes. Its vit.Model has only
// the config; the memories' value classes it has been told (SetValueClasses)
// are all it knows of them.
func (m *Model) Weightless() *Model {
	b := *m.Bundle
	b.Model = &vit.Model{Config: m.Model.Config}
	w := &Model{Bundle: &b, Name: m.Name, Bytes: m.Bytes, Opt: m.Opt, Params: m.NumParams()}
	if en := m.Model.Normalize; en != nil {
		w.EmbedNormWidth = en.Proj.Out
	}
	return w
}

// HasWeights reports whether the model can compute (false: Weightless).
func (m *Model) HasWeights() bool { return m.Params == 0 }

// NumParams is the model's parameter count, the weightless copy's too.
func (m *Model) NumParams() int {
	if m.Params > 0 {
		return m.Params
	}
	return m.Model.NumParams()
}

// HeadsQuestion reports whether err is a checkpoint that does not say its
// head count, with its width and the counts possible for it, most likely
// first: the page asks instead of failing.
func HeadsQuestion(err error) (dim int, choices []int, ok bool) {
	var unknown *checkpoint.HeadsUnknownError
	if !errors.As(err, &unknown) {
		return 0, nil, false
	}
	return unknown.Dim, checkpoint.HeadChoices(unknown.Dim), true
}

// SetClasses replaces the class names with those of a text or JSON file.
// The model is left unchanged when the file does not fit it.
func (m *Model) SetClasses(name string, data []byte) error {
	names, err := bundle.ParseClassNames(name, data)
	if err != nil {
		return err
	}
	if c := m.Model.Config.Classes; len(names) != c {
		return fmt.Errorf("%s: %d class names for a model with %d classes", name, len(names), c)
	}
	m.Classes, m.ClassesSource = names, name
	return nil
}

// UseImageNetClasses switches to the bundled ImageNet-1k names.
func (m *Model) UseImageNetClasses() error {
	data, err := public.Files.ReadFile(public.ImageNetClasses)
	if err != nil {
		return err
	}
	if err := m.SetClasses(public.ImageNetClasses, data); err != nil {
		return err
	}
	m.ClassesSource = "bundled ImageNet-1k names"
	return nil
}

// SetPreset switches the preprocessing preset.
func (m *Model) SetPreset(name string) error {
	p, err := preprocess.PresetByName(name)
	if err != nil {
		return err
	}
	m.Preset, m.PresetSource = p, preprocess.PresetSource{How: preprocess.PresetGiven, From: "chosen in the app"}
	return nil
}

// ClassName returns the name of class c, or its number.
func (m *Model) ClassName(c int) string {
	if c >= 0 && c < len(m.Classes) && m.Classes[c] != "" {
		return m.Classes[c]
	}
	return "class " + strconv.Itoa(c) // not fmt: views ask for 1000s of these
}

// Facts lists what the app shows about a model, in display order.
func (m *Model) Facts() [][2]string {
	c := m.Model.Config
	info := m.Info
	family := string(info.Family)
	if info.Format != "" {
		family += " (" + info.Format + ")"
	}
	tokens := fmt.Sprintf("%d (%d×%d patches", c.NumTokens(), c.GridSize(), c.GridSize())
	switch {
	case !c.ClassToken:
		tokens += ", no [CLS])"
	case c.DistToken:
		tokens += " + [CLS] + distillation token)"
	case c.Registers > 0:
		tokens += fmt.Sprintf(" + [CLS] + %d registers)", c.Registers)
	default:
		tokens += " + [CLS])"
	}
	arch := fmt.Sprintf("%d blocks, dim %d, %d heads, MLP %d", c.Depth, c.Dim, c.Heads, c.MLPDim)
	if c.PostNorm {
		arch += ", post-norm"
	}
	facts := [][2]string{
		{"family", family},
		{"input", fmt.Sprintf("%d×%d, patch %d", c.ImageSize, c.ImageSize, c.PatchSize)},
		{"tokens", tokens},
		{"blocks", arch},
		{"pooling", string(c.Pool)},
		{"classes", classesFact(m)},
		{"parameters", formatCount(m.NumParams())},
		{"config", info.ConfigSource},
		{"activation", activationFact(c.Act, info.ActSource)},
		{"preset", presetFact(m.Preset.Name, m.PresetSource)},
	}
	if acc := info.Metadata["test_accuracy"]; acc != "" {
		facts = append(facts, [2]string{"accuracy", acc + " (checkpoint metadata)"})
	}
	if len(info.Ignored) > 0 {
		facts = append(facts, [2]string{"ignored", strings.Join(info.Ignored, ", ")})
	}
	return facts
}

// classesFact counts the classes, says where their names came from and
// whether a head file normalises the embedding first.
func classesFact(m *Model) string {
	s := fmt.Sprintf("%d: %s", m.Model.Config.Classes, m.ClassesSource)
	width := m.EmbedNormWidth
	if en := m.Model.Normalize; en != nil {
		width = en.Proj.Out
	}
	if width > 0 {
		s += fmt.Sprintf("; the %d-wide embedding L2-normalised before the head file", width)
	}
	return s
}

// activationFact names the MLP activation and which source or rule chose it.
func activationFact(act vit.Activation, from string) string {
	if act == "" {
		act = vit.ActGELU
	}
	if from == "" {
		return string(act)
	}
	return string(act) + " (" + from + ")"
}

// presetFact says which preprocessing runs and how it was chosen; an
// assumed one is a warning, since a wrong preset silently shifts every
// number.
func presetFact(name string, src preprocess.PresetSource) string {
	if src.How == preprocess.PresetAssumed {
		return "preset assumed: " + name + "; pick the right one under Preprocessing (" + src.From + ")"
	}
	return name + " (" + src.String() + ")"
}

func formatCount(n int) string {
	switch {
	case n >= 1e6:
		return fmt.Sprintf("%.1f M", float64(n)/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.0f k", float64(n)/1e3)
	}
	return fmt.Sprint(n)
}

// Image is a decoded picture, independent of any model.
type Image struct {
	Name string
	Src  image.Image
}

// DecodeImage decodes a PNG, JPEG, GIF, BMP or WebP file held in memory.
func DecodeImage(name string, data []byte) (*Image, error) {
	img, err := preprocess.DecodeLimit(bytes.NewReader(data), name, MaxImagePixels)
	if err != nil {
		return nil, err
	}
	return &Image{Name: name, Src: img}, nil
}

// Samples decodes the bundled sample images of files (laid out as package
// public's) in file-name order. They are listed by samples/labels.csv, not
// by reading the folder, which HTTP cannot do; they are read concurrently,
// since in the browser each is a request.
func Samples(files fs.FS) ([]*Image, error) {
	index, err := fs.ReadFile(files, public.SamplesIndex)
	if err != nil {
		return nil, err
	}
	rows, err := csv.NewReader(bytes.NewReader(index)).ReadAll()
	if err != nil || len(rows) == 0 || len(rows[0]) == 0 || rows[0][0] != "file" {
		return nil, fmt.Errorf("%s: want a CSV file whose first column is \"file\" (%v)", public.SamplesIndex, err)
	}
	var names []string
	for _, r := range rows[1:] {
		switch strings.ToLower(path.Ext(r[0])) {
		case ".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp":
			names = append(names, r[0])
		}
	}
	sort.Strings(names)
	out := make([]*Image, len(names))
	errs := make([]error, len(names))
	var wg sync.WaitGroup
	for i, name := range names {
		wg.Go(func() {
			data, err := fs.ReadFile(files, path.Join(public.SamplesDir, name))
			if err == nil {
				out[i], err = DecodeImage(name, data)
			}
			errs[i] = err
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// Input is an image prepared for one model: the tensor the model reads and
// the picture it sees (after resizing and cropping, before normalisation),
// on which the patch grid is drawn.
type Input struct {
	Pixels  *vit.Tensor
	Preview *image.NRGBA
}

// Prepare preprocesses img with the model's preset.
func (m *Model) Prepare(img *Image) (*Input, error) {
	t, err := m.Preset.Apply(img.Src, m.Model.Config.ImageSize)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", img.Name, err)
	}
	return &Input{Pixels: t, Preview: denormalize(t, m.Preset)}, nil
}

// denormalize undoes the preset's mean/std so the preview shows exactly the
// pixels the model reads.
func denormalize(t *vit.Tensor, p preprocess.Preset) *image.NRGBA {
	s := t.Shape[1]
	img := image.NewNRGBA(image.Rect(0, 0, s, s))
	for c := 0; c < 3; c++ {
		plane := t.Data[c*s*s : (c+1)*s*s]
		for i, v := range plane {
			x := (v*p.Std[c] + p.Mean[c]) * 255
			img.Pix[4*i+c] = uint8(min(max(x+0.5, 0), 255))
		}
	}
	for i := 3; i < len(img.Pix); i += 4 {
		img.Pix[i] = 255
	}
	return img
}
