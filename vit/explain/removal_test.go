package explain

import (
	"math"
	"reflect"
	"testing"

	"vitlens/vit"
	"vitlens/vit/lens"
	"vitlens/vit/vittest"
)

var smallConfig = vittest.SmallConfig

func smallModel(t *testing.T) *vit.Model { return vittest.SharpModel(t) }

func TestKeptAndOrder(t *testing.T) {
	order := Order([]float64{0.1, 0.9, 0.5, 0.9}, 1) // tokens 1..4
	if !reflect.DeepEqual(order, []int{2, 4, 3, 1}) {
		t.Fatalf("order %v", order)
	}
	cases := []struct {
		n    int
		dir  string
		want []int
	}{
		{0, Negative, []int{0, 1, 2, 3, 4}},
		{1, Negative, []int{0, 2, 3, 4}}, // least important (1) goes first
		{3, Negative, []int{0, 2}},
		{4, Negative, []int{0}},
		{1, Positive, []int{0, 1, 3, 4}}, // most important (2) goes first
		{3, Positive, []int{0, 1}},
		{4, Positive, []int{0}},
	}
	for _, c := range cases {
		if got := kept(order, c.n, 1, c.dir); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s removing %d keeps %v, want %v", c.dir, c.n, got, c.want)
		}
	}
	// With three prefix tokens ([CLS] and two registers) every one is kept.
	order = Order([]float64{0.1, 0.9, 0.5}, 3) // tokens 3..5
	if got, want := kept(order, 1, 3, Positive), []int{0, 1, 2, 3, 5}; !reflect.DeepEqual(got, want) {
		t.Errorf("registers: positive removing 1 keeps %v, want %v", got, want)
	}
	if got, want := kept(order, 3, 3, Negative), []int{0, 1, 2}; !reflect.DeepEqual(got, want) {
		t.Errorf("registers: negative removing all keeps %v, want %v", got, want)
	}
}

// By hand; the golden test in vit/explain/batch checks the same function
// against the original's numpy formula on many curves.
func TestAUC(t *testing.T) {
	// P = 2: the original sums the single point with 1 removed, over max·2.
	trap, orig := AUC([]float64{1, 1, 1})
	if trap != 1 || orig != 0.5 {
		t.Fatalf("flat 1: %g %g", trap, orig)
	}
	// P = 4, removed 1..3 → 0.6, 0.4, 0.2: 1.2 / (0.6·4) = 0.5.
	trap, orig = AUC([]float64{0.8, 0.6, 0.4, 0.2, 0})
	if math.Abs(trap-0.4) > 1e-12 || math.Abs(orig-0.5) > 1e-12 {
		t.Fatalf("linear: %g %g", trap, orig)
	}
	if trap, orig = AUC([]float64{1, 0}); trap != 0.5 || !math.IsNaN(orig) {
		t.Fatalf("P = 1 has no interior point: %g %g", trap, orig)
	}
}

// Every count 0..P is evaluated: nothing removed is the plain prediction,
// everything removed is the [CLS]-only sequence (A15).
func TestCurveEnds(t *testing.T) {
	m := smallModel(t)
	px := vit.RandomImages(smallConfig, 1, 3)[0]
	P := smallConfig.NumPatches()
	full, _ := m.Forward(px, vit.Options{})
	none, _ := m.Forward(px, vit.Options{Keep: []int{0}})
	order := RandomOrder(0, 0, P, 1)
	for _, dir := range []string{Negative, Positive} {
		preds, err := Curve(m, px, order, dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(preds) != P+1 || preds[0] != lens.Argmax(full.Logits) || preds[P] != lens.Argmax(none.Logits) {
			t.Fatalf("%s: %d points, ends %d %d, want %d %d", dir, len(preds), preds[0], preds[P], lens.Argmax(full.Logits), lens.Argmax(none.Logits))
		}
	}
}

func TestOverlay(t *testing.T) {
	px := vit.RandomImages(smallConfig, 1, 1)[0]
	heat := make([]float32, 16)
	heat[0] = 5 // top-left patch hot
	img := Overlay(px, heat, 4, 32)
	if img.Bounds().Dx() != 32 {
		t.Fatalf("size %v", img.Bounds())
	}
	hot, cold := img.RGBAAt(1, 1), img.RGBAAt(30, 30)
	if !(hot.R > hot.B && cold.B > cold.R) {
		t.Fatalf("hot %v cold %v: JET should run blue→red", hot, cold)
	}
	up := Upsample([]float32{0, 1, 2, 3}, 2, 4)
	if up[0] != 0 || up[15] != 3 || up[1] != 0.25 {
		t.Fatalf("upsample %v", up)
	}
}

// Both AUCs against tools/reference/make_report_golden.py: the original's
// np.sum(a)/(np.max(a)·P) on its points (1..P−1 removed) and np.trapz over
// every point, for P = 4, 16, 49 and falling, noisy and flat curves.
func TestAUCMatchesOriginal(t *testing.T) {
	var g struct {
		Removal []struct {
			Patches             int
			Accuracy            []float64
			Original, Trapezoid float64
		}
	}
	vittest.ReportGolden(t, &g)
	if len(g.Removal) == 0 {
		t.Fatal("no removal cases")
	}
	for _, c := range g.Removal {
		trap, orig := AUC(c.Accuracy)
		// Sums of ≤ 50 values in a different order.
		if math.Abs(orig-c.Original) > 1e-13 || math.Abs(trap-c.Trapezoid) > 1e-13 {
			t.Errorf("P = %d, %v: original %.15g trapezoid %.15g, numpy %.15g %.15g", c.Patches, c.Accuracy[:3], orig, trap, c.Original, c.Trapezoid)
		}
	}
}
