package vit

// ClassRows is one call of the lens's row pass (vit/lens: Projector.FinishRow
// then readRow) for a platform kernel that runs it on threads of its own:
// the browser's threaded WebAssembly module, where Go itself has one thread.
// Row r is site r/Tokens's token r%Tokens.
type ClassRows struct {
	Z [][]float32 // per site, Tokens×Classes: the raw projections E'·h
	// H holds per site the Tokens×Dim vectors h themselves, whose LayerNorm
	// mean and 1/σ (NormStats with Eps) the kernel takes row by row.
	H                          [][]float32
	Dim                        int
	Eps                        float32
	S, Bias                    []float32 // the folded head's E'·1 and β', Classes each
	Ref                        []float32 // Tokens×Classes: each token's reference probabilities (KL)
	Tokens, Classes, Target, K int
	// Filled in: per row its target's rank, the target's logit, and Σe,
	// Σe·d, Σp·d (e = exp(d), d = logit − the row's max, p = Ref's row), in
	// float64; a rank of −1 marks a row the kernel left to the caller (a
	// logit not finite, or one past Exp32's polynomial range). Top holds
	// each row's K best classes.
	Out []float64 // 5 per row
	Top []int32   // K per row
}

// Rows is the job's row count.
func (j *ClassRows) Rows() int { return len(j.Z) * j.Tokens }
