package vit

import (
	"fmt"
	"math"
)

// Activation names the MLP's nonlinearity (Config.Act). It is never
// inferred from the weights: config.json, --config or a timm architecture
// name says it, and "" is timm's default, exact GELU.
type Activation string

const (
	ActGELU      Activation = "gelu"       // 0.5·x·(1 + erf(x/√2)), timm and HF "gelu"
	ActGELUTanh  Activation = "gelu_tanh"  // tanh approximation, HF "gelu_new" / "gelu_pytorch_tanh"
	ActQuickGELU Activation = "quick_gelu" // x·σ(1.702·x), OpenAI CLIP
)

// ParseActivation accepts the names config.json may use.
func ParseActivation(s string) (Activation, error) {
	switch s {
	case "gelu":
		return ActGELU, nil
	case "gelu_tanh", "gelu_new", "gelu_pytorch_tanh":
		return ActGELUTanh, nil
	case "quick_gelu":
		return ActQuickGELU, nil
	}
	return "", fmt.Errorf("unknown activation %q (want gelu, gelu_tanh or quick_gelu)", s)
}

// ExactGELU reports whether the MLP activation is exact GELU.
func (c Config) ExactGELU() bool { return c.Act == "" || c.Act == ActGELU }

// Activate applies the config's MLP nonlinearity in place.
func (c Config) Activate(x []float32) {
	switch c.Act {
	case ActGELUTanh:
		GELUTanh(x)
	case ActQuickGELU:
		QuickGELU(x)
	default:
		GELU(x)
	}
}

// GELUTanh is PyTorch's gelu(approximate="tanh"):
// 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
func GELUTanh(x []float32) {
	const k = 0.7978845608028654 // √(2/π)
	for i, v := range x {
		u := float64(v)
		x[i] = float32(0.5 * u * (1 + math.Tanh(k*(u+0.044715*u*u*u))))
	}
}

// QuickGELU is OpenAI CLIP's x·σ(1.702·x).
func QuickGELU(x []float32) {
	for i, v := range x {
		x[i] = float32(float64(v) / (1 + math.Exp(-1.702*float64(v))))
	}
}
