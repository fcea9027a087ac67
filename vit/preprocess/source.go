package preprocess

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
)

// How a preset was chosen (PresetSource.How).
const (
	PresetGiven    = "given"    // by the user or the checkpoint's own metadata
	PresetInferred = "inferred" // from what the weights or files beside them say
	PresetAssumed  = "assumed"  // nothing said: the paper's default, google
)

// PresetSource says how the preset of a model was chosen and from what, for
// `vitlens info`, manifests and the app.
type PresetSource struct {
	How  string `json:"how"`  // PresetGiven, PresetInferred or PresetAssumed
	From string `json:"from"` // what gave or suggested it, in words
}

func (s PresetSource) String() string {
	if s.How == "" {
		return s.From
	}
	return s.How + ": " + s.From
}

// hfProcessor is the part of a Hugging Face preprocessor_config.json
// (ViTImageProcessor, DeiTImageProcessor and their older FeatureExtractor
// names) that decides the pixels.
type hfProcessor struct {
	DoResize      *bool           `json:"do_resize"`
	Size          json.RawMessage `json:"size"`
	Resample      *int            `json:"resample"`
	DoCenterCrop  *bool           `json:"do_center_crop"`
	CropSize      json.RawMessage `json:"crop_size"`
	DoRescale     *bool           `json:"do_rescale"`
	RescaleFactor *float64        `json:"rescale_factor"`
	DoNormalize   *bool           `json:"do_normalize"`
	ImageMean     []float64       `json:"image_mean"`
	ImageStd      []float64       `json:"image_std"`
}

// hfSize reads a size entry: an int or {"height", "width"} (resize to
// that rectangle) or {"shortest_edge"} (shorter side).
func hfSize(raw json.RawMessage) (side int, shorter bool, err error) {
	if len(raw) == 0 {
		return 0, false, nil
	}
	if json.Unmarshal(raw, &side) == nil {
		return side, false, nil
	}
	var hw struct {
		Height, Width int
		ShortestEdge  int `json:"shortest_edge"`
	}
	if err := json.Unmarshal(raw, &hw); err != nil {
		return 0, false, fmt.Errorf("size %s: %v", raw, err)
	}
	switch {
	case hw.ShortestEdge > 0:
		return hw.ShortestEdge, true, nil
	case hw.Height != hw.Width:
		return 0, false, fmt.Errorf("size %s is not square", raw)
	}
	return hw.Height, false, nil
}

// MatchHFProcessor returns the preset that reproduces a Hugging Face
// preprocessor_config.json for a model of image size S, or an error saying
// why none does. Only what changes pixels is compared: resize mode and side,
// PIL filter (resample 2 bilinear, 3 bicubic; ViTImageProcessor's default
// is bilinear), center crop, rescale by 1/255 and mean/std.
func MatchHFProcessor(data []byte, imageSize int) (Preset, error) {
	var hf hfProcessor
	if err := json.Unmarshal(data, &hf); err != nil {
		return Preset{}, fmt.Errorf("not a JSON object: %v", err)
	}
	side, shorter, err := hfSize(hf.Size)
	if err != nil {
		return Preset{}, err
	}
	if hf.DoResize != nil && !*hf.DoResize {
		return Preset{}, errors.New("do_resize is false: no preset leaves the image size alone")
	}
	if side == 0 {
		return Preset{}, errors.New("no size given")
	}
	filter := Bilinear
	if hf.Resample != nil {
		switch *hf.Resample {
		case 2:
		case 3:
			filter = Bicubic
		default:
			return Preset{}, fmt.Errorf("resample %d is neither bilinear (2) nor bicubic (3)", *hf.Resample)
		}
	}
	crop := 0
	if hf.DoCenterCrop != nil && *hf.DoCenterCrop {
		if crop, _, err = hfSize(hf.CropSize); err != nil {
			return Preset{}, fmt.Errorf("crop_size: %v", err)
		}
	}
	if hf.DoRescale != nil && !*hf.DoRescale || hf.RescaleFactor != nil && math.Abs(*hf.RescaleFactor-1.0/255) > 1e-9 {
		return Preset{}, errors.New("pixels are not rescaled by 1/255")
	}
	mean, std := []float64{0, 0, 0}, []float64{1, 1, 1}
	if hf.DoNormalize == nil || *hf.DoNormalize {
		mean, std = hf.ImageMean, hf.ImageStd
		if len(mean) != 3 || len(std) != 3 {
			return Preset{}, errors.New("image_mean and image_std must hold 3 values each")
		}
	}
	for _, p := range presets {
		if p.Grayscale || p.Filter != filter || (p.Resize == ResizeShorterSide) != shorter || p.resizeTarget(imageSize) != side {
			continue
		}
		// After the resize the image is side×side (or side on its shorter
		// side); the crop, if any, must cut it to S, or it must be S already.
		if crop != 0 && (crop != imageSize || p.Crop == NoCrop && side != imageSize) || crop == 0 && (side != imageSize || shorter) {
			continue
		}
		if !close3(p.Mean, mean) || !close3(p.Std, std) {
			continue
		}
		return p, nil
	}
	return Preset{}, fmt.Errorf("no preset resizes to %d%s with %s, crops to %d and normalises with mean %v std %v", side,
		map[bool]string{true: " (shorter side)", false: ""}[shorter], filter, crop, mean, std)
}

func close3(a [3]float32, b []float64) bool {
	for i := range a {
		if math.Abs(float64(a[i])-b[i]) > 1e-6 {
			return false
		}
	}
	return true
}
