package lens

// RowReader exposes rowStats to the external benchmarks.
type RowReader struct {
	ref  klReference
	exps []float32
}

func NewRowReader(refLogits []float32) *RowReader {
	return &RowReader{newKLReference(make([]float32, len(refLogits)), refLogits), make([]float32, len(refLogits))}
}

func (r *RowReader) Stats(logits []float32, target int) (int, float64, float64) {
	return rowStats(logits, r.exps, logits[target], r.ref)
}
