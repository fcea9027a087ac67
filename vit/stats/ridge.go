package stats

import (
	"errors"
	"fmt"
	"math"

	"gonum.org/v1/gonum/mat"
)

// RidgeModel is a fitted multi-output ridge regression: for a row x of d
// features, the prediction for output c is Σ_j x_j·W[j·K+c] + Intercept[c].
type RidgeModel struct {
	D, K      int
	W         []float64 // D×K row-major (sklearn's coef_ transposed)
	Intercept []float64 // K; zeros when fitted without an intercept
}

// chunkRows bounds the float64 copies of targets and features made while
// multiplying: a probe has ~9k rows × 1000 outputs.
const chunkRows = 1024

// FitRidge fits the linear probes of spec §3.10, which the original trains
// with sklearn.linear_model.Ridge(alpha=1.0, solver='lsqr') and its default
// intercept. x holds rows×d features and y rows×k targets, both row-major.
//
// It minimises ‖Y − XW − 1bᵀ‖² + α‖W‖² exactly, with the intercept left
// unpenalised as sklearn does: with the column means x̄, ȳ and X̃ = X − 1x̄ᵀ,
// it solves (X̃ᵀX̃ + αI)W = X̃ᵀY by Cholesky (X̃ᵀỸ = X̃ᵀY because the columns
// of X̃ sum to zero) and sets b = ȳ − Wᵀx̄. Without intercept, X is used as
// is and b = 0. sklearn's 'lsqr' is iterative and stops at tol = 1e-4, so it
// agrees with this exact solution only to about that tolerance (see the
// golden test), while solver='cholesky' agrees to rounding. Everything is
// accumulated in float64; sklearn given float32 features would run lsqr in
// float32.
func FitRidge(x, y []float32, rows, d, k int, alpha float64, intercept bool) (*RidgeModel, error) {
	if err := checkRidgeInputs(x, rows, d, k, alpha); err != nil {
		return nil, err
	}
	if len(y) != rows*k {
		return nil, fmt.Errorf("stats: ridge: y has %d values, want rows×k = %d×%d", len(y), rows, k)
	}
	if i := firstNonFinite(y); i >= 0 {
		return nil, fmt.Errorf("stats: ridge: y row %d column %d is %v", i/k, i%k, y[i])
	}
	yMean := make([]float64, k)
	if intercept {
		columnMeans(y, rows, k, yMean)
	}
	xc, xMean := centre(x, rows, d, intercept)
	xty := mat.NewDense(d, k, nil)
	var part mat.Dense
	for lo := 0; lo < rows; lo += chunkRows {
		hi := min(lo+chunkRows, rows)
		yb := mat.NewDense(hi-lo, k, widen(y[lo*k:hi*k]))
		part.Reset()
		part.Mul(xc.Slice(lo, hi, 0, d).T(), yb)
		xty.Add(xty, &part)
	}
	return solveRidge(xc, xty, xMean, yMean, alpha)
}

// FitRidgeLabels is FitRidge with the ±1 one-hot targets of the probes
// (PlusMinusOne(labels, k)) without building them. With Y = 2·onehot − 1 and
// centred X̃, X̃ᵀY = 2·X̃ᵀonehot, i.e. twice the per-class sums of the centred
// rows, which replaces the rows×d×k product that dominates FitRidge.
func FitRidgeLabels(x []float32, labels []int, rows, d, k int, alpha float64, intercept bool) (*RidgeModel, error) {
	if err := checkRidgeInputs(x, rows, d, k, alpha); err != nil {
		return nil, err
	}
	if len(labels) != rows {
		return nil, fmt.Errorf("stats: ridge: %d labels for %d rows", len(labels), rows)
	}
	xc, xMean := centre(x, rows, d, intercept)
	xty := mat.NewDense(d, k, nil)
	g := xty.RawMatrix().Data // stride k
	yMean := make([]float64, k)
	for r, l := range labels {
		if l < 0 || l >= k {
			return nil, fmt.Errorf("stats: ridge: label %d of row %d is outside [0, %d)", l, r, k)
		}
		yMean[l]++
	}
	if intercept {
		for c := range yMean {
			yMean[c] = 2*yMean[c]/float64(rows) - 1
		}
		for r, l := range labels {
			for j, v := range xc.RawRowView(r) {
				g[j*k+l] += 2 * v
			}
		}
	} else {
		// Uncentred, Σ_r x_r is not zero: XᵀY = 2·class sums − column sums.
		clear(yMean)
		colSum := make([]float64, d)
		for r, l := range labels {
			for j, v := range xc.RawRowView(r) {
				g[j*k+l] += 2 * v
				colSum[j] += v
			}
		}
		for j := range d {
			for c := range k {
				g[j*k+c] -= colSum[j]
			}
		}
	}
	return solveRidge(xc, xty, xMean, yMean, alpha)
}

func checkRidgeInputs(x []float32, rows, d, k int, alpha float64) error {
	switch {
	case rows <= 0 || d <= 0 || k <= 0:
		return fmt.Errorf("stats: ridge: bad shape rows=%d d=%d k=%d", rows, d, k)
	case len(x) != rows*d:
		return fmt.Errorf("stats: ridge: x has %d values, want rows×d = %d×%d", len(x), rows, d)
	case !(alpha >= 0) || math.IsInf(alpha, 1):
		return fmt.Errorf("stats: ridge: alpha must be finite and >= 0, got %v", alpha)
	}
	if i := firstNonFinite(x); i >= 0 {
		return fmt.Errorf("stats: ridge: x row %d column %d is %v", i/d, i%d, x[i])
	}
	return nil
}

// centre returns X − 1x̄ᵀ in float64 and x̄ (x̄ = 0 without intercept).
func centre(x []float32, rows, d int, intercept bool) (*mat.Dense, []float64) {
	xMean := make([]float64, d)
	if intercept {
		columnMeans(x, rows, d, xMean)
	}
	xc := mat.NewDense(rows, d, nil)
	for r := range rows {
		row := xc.RawRowView(r)
		for j, v := range x[r*d : (r+1)*d] {
			row[j] = float64(v) - xMean[j]
		}
	}
	return xc, xMean
}

// solveRidge solves (X̃ᵀX̃ + αI)W = X̃ᵀY and sets b = ȳ − Wᵀx̄.
func solveRidge(xc, xty *mat.Dense, xMean, yMean []float64, alpha float64) (*RidgeModel, error) {
	var gram mat.SymDense
	gram.SymOuterK(1, xc.T())
	return solveGram(&gram, xty, xMean, yMean, alpha)
}

// solveGram solves (G + αI)W = X̃ᵀY for the centred Gram matrix G = X̃ᵀX̃
// (overwritten) and sets b = ȳ − Wᵀx̄.
func solveGram(gram *mat.SymDense, xty *mat.Dense, xMean, yMean []float64, alpha float64) (*RidgeModel, error) {
	d, k := xty.Dims()
	for j := range d {
		gram.SetSym(j, j, gram.At(j, j)+alpha)
	}
	var chol mat.Cholesky
	if !chol.Factorize(gram) {
		return nil, fmt.Errorf("stats: ridge: XᵀX + %vI is not positive definite (collinear features; use alpha > 0)", alpha)
	}
	w := mat.NewDense(d, k, nil)
	if err := chol.SolveTo(w, xty); err != nil {
		return nil, fmt.Errorf("stats: ridge: solve: %w", err)
	}
	m := &RidgeModel{D: d, K: k, W: w.RawMatrix().Data, Intercept: make([]float64, k)}
	for c := range k {
		b := yMean[c]
		for j := range d {
			b -= xMean[j] * m.W[j*k+c]
		}
		m.Intercept[c] = b
	}
	return m, nil
}

// RidgeSums accumulates a ridge regression's sufficient statistics — row
// count, column sums, XᵀX and XᵀY, in float64 — batch by batch, so a fit
// over more rows than fit in memory (hidden states streamed image by
// image) gives FitRidge's exact solution.
type RidgeSums struct {
	D, K       int
	rows       int
	sumX, sumY []float64
	xtx        []float64 // D×D, upper triangle filled by Add
	xty        []float64 // D×K
}

// NewRidgeSums is an empty accumulator for d features and k outputs.
func NewRidgeSums(d, k int) *RidgeSums {
	return &RidgeSums{D: d, K: k, sumX: make([]float64, d), sumY: make([]float64, k),
		xtx: make([]float64, d*d), xty: make([]float64, d*k)}
}

// Add folds in rows×D features x and rows×K targets y (row-major).
func (s *RidgeSums) Add(x, y []float32, rows int) {
	d, k := s.D, s.K
	xr := make([]float64, d)
	for r := range rows {
		for j, v := range x[r*d : (r+1)*d] {
			xr[j] = float64(v)
			s.sumX[j] += xr[j]
		}
		yr := y[r*k : (r+1)*k]
		for c, v := range yr {
			s.sumY[c] += float64(v)
		}
		for i, a := range xr {
			if a == 0 {
				continue
			}
			row := s.xtx[i*d:]
			for j := i; j < d; j++ {
				row[j] += a * xr[j]
			}
			out := s.xty[i*k : (i+1)*k]
			for c, v := range yr {
				out[c] += a * float64(v)
			}
		}
	}
	s.rows += rows
}

// Rows is the number of rows added.
func (s *RidgeSums) Rows() int { return s.rows }

// Solve fits ‖Y − XW − 1bᵀ‖² + α‖W‖² with an unpenalised intercept, as
// FitRidge with intercept: it centres the sums (X̃ᵀX̃ = XᵀX − n·x̄x̄ᵀ,
// X̃ᵀY = XᵀY − n·x̄ȳᵀ) and solves by Cholesky.
func (s *RidgeSums) Solve(alpha float64) (*RidgeModel, error) {
	if s.rows == 0 {
		return nil, errors.New("stats: ridge: no rows")
	}
	if !(alpha >= 0) || math.IsInf(alpha, 1) {
		return nil, fmt.Errorf("stats: ridge: alpha must be finite and >= 0, got %v", alpha)
	}
	d, k, n := s.D, s.K, float64(s.rows)
	xMean, yMean := make([]float64, d), make([]float64, k)
	for j := range d {
		xMean[j] = s.sumX[j] / n
	}
	for c := range k {
		yMean[c] = s.sumY[c] / n
	}
	gram := mat.NewSymDense(d, nil)
	for i := range d {
		for j := i; j < d; j++ {
			gram.SetSym(i, j, s.xtx[i*d+j]-n*xMean[i]*xMean[j])
		}
	}
	xty := mat.NewDense(d, k, nil)
	for i := range d {
		for c := range k {
			xty.Set(i, c, s.xty[i*k+c]-n*xMean[i]*yMean[c])
		}
	}
	return solveGram(gram, xty, xMean, yMean, alpha)
}

// Predict returns the rows×K predictions for rows×D features x.
func (m *RidgeModel) Predict(x []float32, rows int) ([]float64, error) {
	if m == nil || len(m.W) != m.D*m.K || len(m.Intercept) != m.K {
		return nil, errors.New("stats: ridge: predict on an unfitted or malformed model")
	}
	if rows < 0 || len(x) != rows*m.D {
		return nil, fmt.Errorf("stats: ridge: x has %d values, want rows×d = %d×%d", len(x), rows, m.D)
	}
	out := make([]float64, rows*m.K)
	if rows == 0 {
		return out, nil
	}
	w := mat.NewDense(m.D, m.K, m.W)
	for lo := 0; lo < rows; lo += chunkRows {
		hi := min(lo+chunkRows, rows)
		xb := mat.NewDense(hi-lo, m.D, widen(x[lo*m.D:hi*m.D]))
		ob := mat.NewDense(hi-lo, m.K, out[lo*m.K:hi*m.K])
		ob.Mul(xb, w)
		for r := range hi - lo {
			row := ob.RawRowView(r)
			for c, b := range m.Intercept {
				row[c] += b
			}
		}
	}
	return out, nil
}

// PlusMinusOne builds the probe targets of spec §3.10: row i is +1 at
// column labels[i] and −1 elsewhere, over k classes.
func PlusMinusOne(labels []int, k int) ([]float32, error) {
	y := make([]float32, len(labels)*k)
	for i, l := range labels {
		if l < 0 || l >= k {
			return nil, fmt.Errorf("stats: ridge targets: label %d of row %d is outside [0, %d)", l, i, k)
		}
		row := y[i*k : (i+1)*k]
		for c := range row {
			row[c] = -1
		}
		row[l] = 1
	}
	return y, nil
}

func columnMeans(v []float32, rows, cols int, dst []float64) {
	for r := range rows {
		for j, x := range v[r*cols : (r+1)*cols] {
			dst[j] += float64(x)
		}
	}
	for j := range dst {
		dst[j] /= float64(rows)
	}
}

func widen(v []float32) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

func firstNonFinite(v []float32) int {
	for i, x := range v {
		if f := float64(x); math.IsNaN(f) || math.IsInf(f, 0) {
			return i
		}
	}
	return -1
}
