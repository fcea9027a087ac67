package patching_test

import (
	"math"
	"testing"

	"vitlens/vit"
	"vitlens/vit/patching"
)

// The attribution's slow twin: central finite differences of the metric
// along (clean − corrupt) at each site, through the forward's own hooks.
func TestAttributionMatchesFiniteDifferences(t *testing.T) {
	f := load(t, "tiny")
	r, clean, corrupt, _, _ := f.run(t, patching.ModePatch)
	c := f.m.Config
	sites, err := patching.Sites(c, f.hooks, patching.PerToken, c.NumTokens())
	if err != nil {
		t.Fatal(err)
	}
	est, err := r.Attribution(f.corrupt, sites, clean, corrupt)
	if err != nil {
		t.Fatal(err)
	}
	const eps = 1e-2
	for i, s := range sites {
		if s.Token != 0 && s.Token != 5 {
			continue // two tokens are enough for the twin; the golden covers all
		}
		at := func(step float64) float64 {
			fns := vit.HookFuncs{s.Hook: func(_ vit.Hook, act *vit.Tensor) {
				a, b := clean[s.Hook], corrupt[s.Hook]
				s.Elements(act.Shape, func(j int) {
					act.Data[j] += float32(step * (float64(a.Data[j]) - float64(b.Data[j])))
				})
			}}
			tr, err := f.m.Forward(f.corrupt, vit.Options{Hooks: fns})
			if err != nil {
				t.Fatal(err)
			}
			return f.metric.Value(tr.Logits)
		}
		fd := (at(eps) - at(-eps)) / (2 * eps)
		if math.Abs(fd-est[i]) > 2e-3*math.Max(1, math.Abs(fd)) {
			t.Errorf("%v: attribution %g, finite differences %g", s, est[i], fd)
		}
	}
}
