package batch

import (
	"fmt"
	"io"
	"math"
	"slices"

	"vitlens/vit/explain"
	"vitlens/vit/results"
)

// RemovalCurve is the accuracy of one ordering and direction against the
// number of image tokens removed (0..P). Random orderings are pooled over
// their seeds.
type RemovalCurve struct {
	Ordering  string    `json:"ordering"`
	Direction string    `json:"direction"`
	Seeds     int       `json:"seeds"`    // random: seeds pooled; 1 otherwise
	Removed   []int     `json:"removed"`  // 0..P
	Fraction  []float64 `json:"fraction"` // removed / P
	Accuracy  []float64 `json:"accuracy"`
	// AUC is the trapezoid area under accuracy vs fraction removed (0..1),
	// over every count 0..P.
	AUC float64 `json:"auc_trapezoid"`
	// AUCOriginal is the AUC as the original prints it
	// (src/plots/explainability.py): Σacc / (max(acc)·P) over the counts it
	// evaluates, 1..P−1 removed (A15; see explain.AUC).
	AUCOriginal float64 `json:"auc_original"`
}

// RemovalReport is the removal test's summary.
type RemovalReport struct {
	Images   int            `json:"images"`
	Patches  int            `json:"patches"`
	Accuracy float64        `json:"accuracy"` // nothing removed
	Curves   []RemovalCurve `json:"curves"`
}

// Curve returns the curve of an ordering and direction, or nil.
func (r *RemovalReport) Curve(ordering, direction string) *RemovalCurve {
	for i := range r.Curves {
		if r.Curves[i].Ordering == ordering && r.Curves[i].Direction == direction {
			return &r.Curves[i]
		}
	}
	return nil
}

// SummarizeRemoval reads a removal results folder.
func SummarizeRemoval(dir string) (*RemovalReport, error) {
	m, err := results.ReadManifest(dir)
	if err != nil {
		return nil, err
	}
	P := m.Config.NumPatches()
	type key struct{ ordering, direction string }
	type acc struct {
		hit, n []int
		seeds  map[int32]bool
	}
	curves := map[key]*acc{}
	images := map[int32]bool{}
	err = results.ReadRows(dir, "removal", func(r explain.RemovalRow) error {
		if r.Removed < 0 || int(r.Removed) > P {
			return fmt.Errorf("%s: image %d: %d tokens removed, the model has %d", dir, r.Image, r.Removed, P)
		}
		k := key{r.Ordering, r.Direction}
		a := curves[k]
		if a == nil {
			a = &acc{hit: make([]int, P+1), n: make([]int, P+1), seeds: map[int32]bool{}}
			curves[k] = a
		}
		a.n[r.Removed]++
		if r.Correct {
			a.hit[r.Removed]++
		}
		a.seeds[r.Seed] = true
		images[r.Image] = true
		return nil
	})
	if err != nil {
		return nil, err
	}
	rep := &RemovalReport{Images: len(images), Patches: P, Accuracy: math.NaN()}
	var keys []key
	for k := range curves {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b key) int {
		if c := slices.Index(explain.AllOrderings, a.ordering) - slices.Index(explain.AllOrderings, b.ordering); c != 0 {
			return c
		}
		if a.direction < b.direction {
			return -1
		}
		if a.direction > b.direction {
			return 1
		}
		return 0
	})
	for _, k := range keys {
		a := curves[k]
		c := RemovalCurve{Ordering: k.ordering, Direction: k.direction, Seeds: len(a.seeds)}
		for n := 0; n <= P; n++ {
			c.Removed = append(c.Removed, n)
			c.Fraction = append(c.Fraction, float64(n)/float64(P))
			v := math.NaN()
			if a.n[n] > 0 {
				v = float64(a.hit[n]) / float64(a.n[n])
			}
			c.Accuracy = append(c.Accuracy, v)
		}
		c.AUC, c.AUCOriginal = explain.AUC(c.Accuracy)
		if math.IsNaN(rep.Accuracy) && a.n[0] > 0 {
			rep.Accuracy = float64(a.hit[0]) / float64(a.n[0])
		}
		rep.Curves = append(rep.Curves, c)
	}
	return rep, nil
}

// WriteText prints the AUC table.
func (r *RemovalReport) WriteText(w io.Writer) {
	fmt.Fprintf(w, "token removal: %d images, %d image tokens, accuracy %.2f%% with none removed\n", r.Images, r.Patches, 100*r.Accuracy)
	fmt.Fprintln(w, "AUC trapezoid: area under accuracy vs fraction removed, 0..P removed; AUC original: Σacc/(max(acc)·P) over 1..P−1 removed, as src/plots/explainability.py")
	fmt.Fprintln(w, "ordering\tdirection\tseeds\tAUC trapezoid\tAUC original\tacc@25%\tacc@50%\tacc@75%")
	for _, c := range r.Curves {
		at := func(f float64) float64 { return c.Accuracy[int(math.Round(f*float64(r.Patches)))] }
		fmt.Fprintf(w, "%s\t%s\t%d\t%.4f\t%.4f\t%.3f\t%.3f\t%.3f\n", c.Ordering, c.Direction, c.Seeds, c.AUC, c.AUCOriginal, at(0.25), at(0.5), at(0.75))
	}
}
