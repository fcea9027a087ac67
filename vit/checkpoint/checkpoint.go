// Package checkpoint loads Vision Transformer weights from safetensors and
// PyTorch files, in timm, Hugging Face or torchvision naming, into the
// canonical *vit.Model.
//
// The path is: bytes → ReadTensors (format: safetensors or PyTorch pickle,
// every dtype widened to float32, torch shapes kept) → FromTensors (family
// detection, renaming to timm's names through one table per family, config
// inference, strict name and shape checks) → model.CheckShapes.
package checkpoint

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"

	"vitlens/vit"
)

// Family is the naming convention of a checkpoint.
type Family string

const (
	Timm        Family = "timm"
	HF          Family = "hf"        // Hugging Face transformers ViT / DeiT
	HFDINOv2    Family = "hf-dinov2" // Hugging Face Dinov2Model
	HFCLIP      Family = "hf-clip"   // Hugging Face CLIPVisionModelWithProjection
	Torchvision Family = "torchvision"
)

// File formats reported in Info.Format.
const (
	FormatSafetensors = "safetensors"
	FormatPyTorch     = "pytorch"
)

// Where the config came from. Info.ConfigSource starts with the strongest
// source that supplied a field (override > config.json > metadata >
// inferred); when no source gave the head count it goes on with HeadsAssumed.
const (
	SourceInferred   = "inferred"
	SourceConfigJSON = "config.json"
	SourceMetadata   = "metadata"
	SourceOverride   = "override"
	HeadsAssumed     = " (heads = dim/64 assumed: no config gave heads)"
)

// Info describes what was loaded and how.
type Info struct {
	Path         string
	Format       string // FormatSafetensors or FormatPyTorch; "" from FromTensors
	Family       Family
	Config       vit.Config
	ConfigSource string
	// ActSource says which source or rule chose the MLP activation: an
	// "act" key, a timm architecture name (and the rule that read it), the
	// override, or timm's default.
	ActSource string
	Metadata  map[string]string // safetensors __metadata__
	// Ignored lists the tensors knowingly skipped (NonStrict only), by their
	// names in the file.
	Ignored []string
	// Hints about where the weights come from, for choosing the
	// preprocessing (bundle.SuggestPreset): Distilled says the file held a
	// DeiT distillation token or head; Scope is the Hugging Face model
	// attribute its names carried ("vit." or "deit.", "" for none);
	// ModelType is config.json's "model_type" ("" without one).
	Distilled bool
	Scope     string
	ModelType string
	// PosGrid is the checkpoint's position-embedding grid side when it was
	// resized to the config's image size (0 when not).
	PosGrid int
}

// Options tune loading.
type Options struct {
	// Override replaces inferred fields with its non-zero ones. Booleans can
	// therefore only be switched on here (config.json can say false).
	Override *vit.Config
	// NonStrict skips unknown tensors into Info.Ignored instead of failing.
	NonStrict bool
	// ConfigJSON is the text of a config.json (Hugging Face keys or
	// vit.Config's keys). Load reads the one beside the file when this is nil;
	// the browser passes the file the user picked.
	ConfigJSON []byte
	// ConfigName names ConfigJSON in messages (the file the user gave);
	// "" means "config.json".
	ConfigName string
}

// Load reads a checkpoint file and, when opt.ConfigJSON is nil, the
// config.json beside it if there is one.
func Load(path string, opt Options) (*vit.Model, Info, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, Info{Path: path}, fmt.Errorf("%s: %w", path, unwrapPath(err))
	}
	if opt.ConfigJSON == nil {
		cj := filepath.Join(filepath.Dir(path), "config.json")
		if b, err := os.ReadFile(cj); err == nil {
			opt.ConfigJSON, opt.ConfigName = b, cj
		} else if !errors.Is(err, os.ErrNotExist) {
			return nil, Info{Path: path}, fmt.Errorf("%s: config.json beside it: %w", path, unwrapPath(err))
		}
	}
	return LoadBytes(path, data, opt)
}

// unwrapPath drops the path from an *os.PathError, which our messages
// already start with.
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return fmt.Errorf("%s: %w", pe.Op, pe.Err)
	}
	return err
}

// LoadBytes loads a checkpoint held in memory (a file picked or fetched in
// the browser). name is used in messages and, with the content, to tell the
// format.
func LoadBytes(name string, data []byte, opt Options) (m *vit.Model, info Info, err error) {
	info.Path = name
	tensors, meta, format, err := ReadTensors(name, data)
	if err != nil {
		return nil, info, err
	}
	m, info, err = FromTensors(name, tensors, meta, opt)
	info.Format = format
	return m, info, err
}

// ReadTensors decodes every tensor of a safetensors or PyTorch file to
// float32 with its torch shape. PyTorch checkpoints may wrap the state_dict
// in {'model'|'state_dict'|'module'|'model_state': ...}; names are returned
// as stored (prefixes like "module." are stripped later, by FromTensors).
func ReadTensors(name string, data []byte) (tensors map[string]*vit.Tensor, meta map[string]string, format string, err error) {
	defer recoverAs(name, &err)
	format, err = sniff(name, data)
	if err != nil {
		return nil, nil, "", fmt.Errorf("%s: %w", name, err)
	}
	switch format {
	case FormatSafetensors:
		tensors, meta, err = readSafetensors(data)
	default:
		tensors, err = readPyTorch(data)
	}
	if err != nil {
		return nil, nil, format, fmt.Errorf("%s: %w", name, err)
	}
	return tensors, meta, format, nil
}

// FromTensors maps named tensors (any family's naming) onto a vit.Model.
// meta may hold a "config" entry with vit.Config JSON (our own exports).
func FromTensors(name string, tensors map[string]*vit.Tensor, meta map[string]string, opt Options) (m *vit.Model, info Info, err error) {
	defer recoverAs(name, &err)
	info = Info{Path: name, Metadata: meta}
	m, err = build(tensors, meta, opt, &info)
	if err != nil {
		return nil, info, fmt.Errorf("%s: %w", name, err)
	}
	return m, info, nil
}

// recoverAs turns a panic in a library (or here) into an error naming the
// file, because no input, however malformed, may crash the program. gopickle
// does panic on some corrupt pickles (odd item counts in DICT/SETITEMS).
// VITLENS_DEBUG=1 appends the stack, for tracing such a panic.
func recoverAs(name string, err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("%s: malformed checkpoint (decoder panicked: %v)", name, r)
		if os.Getenv("VITLENS_DEBUG") != "" {
			*err = fmt.Errorf("%w\n%s", *err, debug.Stack())
		}
	}
}

// sniff tells the format from the content first, the file name second, and
// names common non-checkpoint files so the user sees what they picked.
func sniff(name string, data []byte) (string, error) {
	ext := strings.ToLower(filepath.Ext(name))
	switch {
	case len(data) == 0:
		return "", errors.New("empty file")
	case bytes.HasPrefix(data, []byte("PK\x03\x04")), bytes.HasPrefix(data, []byte("PK\x05\x06")):
		return FormatPyTorch, nil // torch.save's zip (the npz case is told apart later)
	case len(data) >= 9 && data[8] == '{', ext == ".safetensors":
		// Before the pickle test: a header length of 0x2?80 starts like one.
		return FormatSafetensors, nil
	case len(data) >= 2 && data[0] == 0x80 && data[1] >= 2 && data[1] <= 5:
		return FormatPyTorch, nil // pickle protocol header: legacy torch.save
	}
	what := "unknown content"
	for _, k := range []struct{ magic, what string }{
		{"\x89PNG", "a PNG image"},
		{"\xff\xd8\xff", "a JPEG image"},
		{"GIF8", "a GIF image"},
		{"\x1f\x8b", "gzip data"},
		{"\x93NUMPY", "a NumPy .npy array"},
		{"\x89HDF", "an HDF5 (Keras) file"},
		{"GGUF", "a GGUF file"},
		{"{", "JSON text (a config.json?)"},
	} {
		if bytes.HasPrefix(data, []byte(k.magic)) {
			what = k.what
			break
		}
	}
	return "", fmt.Errorf("not a checkpoint (%s, %d bytes): want safetensors or a PyTorch .pth/.pt/.bin file", what, len(data))
}
