// Package vit holds the Vision Transformer model, its configuration and the
// pure-Go reference forward pass that every other backend is checked against.
package vit

import "fmt"

// Tensor is a dense row-major float32 array. It is deliberately minimal: the
// forward pass works on flat slices and shapes are only carried for checks and
// for the people reading results.
type Tensor struct {
	Shape []int
	Data  []float32
}

// NewTensor allocates a zeroed tensor of the given shape.
func NewTensor(shape ...int) *Tensor {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return &Tensor{Shape: append([]int(nil), shape...), Data: make([]float32, n)}
}

// Numel is the number of elements the shape describes.
func (t *Tensor) Numel() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// Row returns row i of a 2-D tensor (a view, not a copy).
func (t *Tensor) Row(i int) []float32 {
	w := t.Shape[len(t.Shape)-1]
	return t.Data[i*w : (i+1)*w]
}

func (t *Tensor) String() string { return fmt.Sprintf("Tensor%v", t.Shape) }
