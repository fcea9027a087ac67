package stats

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// Fixtures come from tools/reference/make_stats_golden.py (scipy 1.10.1,
// sklearn 1.2.1, numpy 1.24); see that script for what each case exercises.
const goldenDir = "../../testdata/stats"

func readGolden(t *testing.T, name string, v any) {
	t.Helper()
	path := filepath.Join(goldenDir, name)
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// relErr is |got − want| / |want|, or the absolute error when want is 0.
func relErr(got, want float64) float64 {
	if got == want {
		return 0
	}
	if want == 0 {
		return math.Abs(got)
	}
	return math.Abs(got-want) / math.Abs(want)
}

func TestWilcoxonGolden(t *testing.T) {
	var g struct {
		Cases []struct {
			Name   string
			X, Y   []float64
			Expect map[string]struct {
				Statistic, Pvalue float64
				Method            string
			}
		}
	}
	readGolden(t, "wilcoxon.json", &g)
	if len(g.Cases) == 0 {
		t.Fatal("wilcoxon.json holds no cases")
	}
	var worstExact, worstApprox float64
	for _, c := range g.Cases {
		for alt, want := range c.Expect {
			got, err := WilcoxonSignedRank(c.X, c.Y, Alternative(alt))
			if err != nil {
				t.Errorf("%s/%s: %v", c.Name, alt, err)
				continue
			}
			if got.Method != want.Method {
				t.Errorf("%s/%s: method %s, scipy used %s", c.Name, alt, got.Method, want.Method)
			}
			if got.Statistic != want.Statistic {
				t.Errorf("%s/%s: statistic %v, scipy %v", c.Name, alt, got.Statistic, want.Statistic)
			}
			e := relErr(got.P, want.Pvalue)
			if e > 1e-9 && math.Abs(got.P-want.Pvalue) > 1e-12 {
				t.Errorf("%s/%s: p %.17g, scipy %.17g (rel err %.2g)", c.Name, alt, got.P, want.Pvalue, e)
			}
			if want.Method == "exact" {
				worstExact = max(worstExact, e)
			} else {
				worstApprox = max(worstApprox, e)
			}
		}
	}
	t.Logf("max relative p-value error vs scipy: exact %.3g, approx %.3g", worstExact, worstApprox)
}

func TestRidgeGolden(t *testing.T) {
	type fit struct {
		Coef      [][]float64 // k×d, sklearn's layout
		Intercept []float64
		Predict   [][]float64
	}
	var g struct {
		Alpha      float64
		Rows, D, K int
		X, Y       []float64
		Labels     []int
		XTest      []float64 `json:"x_test"`
		Fits       map[string]fit
	}
	readGolden(t, "ridge.json", &g)
	x, y, xTest := narrow(g.X), narrow(g.Y), narrow(g.XTest)
	if pm, err := PlusMinusOne(g.Labels, g.K); err != nil || !equal32(pm, y) {
		t.Errorf("PlusMinusOne does not rebuild the fixture's targets (err %v)", err)
	}
	cases := []struct {
		fit       string
		intercept bool
		tol       float64 // max abs error on coef, intercept and predictions
	}{
		{"cholesky", true, 1e-12},
		{"cholesky_no_intercept", false, 1e-12},
		// lsqr stops at sklearn's tol=1e-4: on this fixture sklearn's own
		// lsqr and cholesky solutions differ by 9.4e-5 on coef, 3.4e-4 on
		// the intercept and 3.6e-4 on predictions of magnitude ~1.8.
		{"lsqr", true, 5e-4},
	}
	for _, c := range cases {
		want := g.Fits[c.fit]
		m, err := FitRidge(x, y, g.Rows, g.D, g.K, g.Alpha, c.intercept)
		if err != nil {
			t.Fatalf("%s: %v", c.fit, err)
		}
		var worst float64
		for cls := range g.K {
			for j := range g.D {
				worst = max(worst, math.Abs(m.W[j*g.K+cls]-want.Coef[cls][j]))
			}
			worst = max(worst, math.Abs(m.Intercept[cls]-want.Intercept[cls]))
		}
		// The label fast path must give the same model.
		ml, err := FitRidgeLabels(x, g.Labels, g.Rows, g.D, g.K, g.Alpha, c.intercept)
		if err != nil {
			t.Fatalf("%s: labels: %v", c.fit, err)
		}
		var gap float64
		for i := range m.W {
			gap = max(gap, math.Abs(ml.W[i]-m.W[i]))
		}
		for i := range m.Intercept {
			gap = max(gap, math.Abs(ml.Intercept[i]-m.Intercept[i]))
		}
		if gap > 1e-12 {
			t.Errorf("%s: FitRidgeLabels differs from FitRidge by %.3g", c.fit, gap)
		}
		pred, err := m.Predict(xTest, len(want.Predict))
		if err != nil {
			t.Fatalf("%s: predict: %v", c.fit, err)
		}
		for r, row := range want.Predict {
			for cls, v := range row {
				worst = max(worst, math.Abs(pred[r*g.K+cls]-v))
			}
			// The probes only use the argmax and the rank of the true class.
			if a, b := argmax(pred[r*g.K:(r+1)*g.K]), argmax(row); a != b {
				t.Errorf("%s: test row %d predicts class %d, sklearn %d", c.fit, r, a, b)
			}
		}
		if worst > c.tol {
			t.Errorf("%s: max abs error %.3g > %.0g", c.fit, worst, c.tol)
		}
		t.Logf("ridge vs sklearn %s: max abs error %.3g", c.fit, worst)
	}
}

func narrow(v []float64) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(x)
	}
	return out
}

func equal32(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func argmax(v []float64) int {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return best
}
