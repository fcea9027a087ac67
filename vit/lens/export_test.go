package lens

// RowReader exposes readRow to the external benchmarks.
type RowReader struct {
	ref  klReference
	exps []float32
	top  []int32
}

func NewRowReader(refLogits []float32, k int) *RowReader {
	return &RowReader{newKLReference(make([]float32, len(refLogits)), refLogits), make([]float32, len(refLogits)), make([]int32, k)}
}

func (r *RowReader) Read(logits []float32, target int) (int, float64, float64) {
	return readRow(r.top, logits, r.exps, logits[target], r.ref)
}
