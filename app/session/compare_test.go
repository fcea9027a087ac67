package session

import (
	"bytes"
	"encoding/csv"
	"slices"
	"strings"
	"testing"

	"vitlens/vit"
)

// The random init has the model's architecture, classes and preset and
// timm's initialisation; the second analysis ranks the first one's class;
// the comparison table holds both readouts under one header.
func TestCompareWithRandomInit(t *testing.T) {
	m := tiny(t)
	r, err := m.RandomInit(RandomSeed)
	if err != nil {
		t.Fatal(err)
	}
	want, err := vit.NewRandom(m.Model.Config, RandomSeed)
	if err != nil {
		t.Fatal(err)
	}
	if r.Model.Config != m.Model.Config || !slices.Equal(r.Classes, m.Classes) || r.Preset.Name != m.Preset.Name ||
		!slices.Equal(r.Model.Blocks[0].FC1.Weights(), want.Blocks[0].FC1.Weights()) || m.Model == r.Model {
		t.Fatalf("random init: %q, config %+v", r.Name, r.Model.Config)
	}
	a := analyze(t, m, Settings{Target: -1, Drop: []int{3}})
	s, err := CompareSettings(a, r)
	if err != nil || s.Target != a.Base.Target || !slices.Equal(s.Drop, []int{3}) {
		t.Fatalf("compare settings %+v, %v (first target %d)", s, err, a.Base.Target)
	}
	b := analyze(t, r, s)
	rows, err := csv.NewReader(bytes.NewReader(CompareCSV(a, b))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	one, _ := csv.NewReader(bytes.NewReader(a.ReadoutsCSV())).ReadAll()
	if len(rows) != 2*len(one)-1 || rows[0][0] != "model" || rows[1][0] != m.Name || !strings.HasPrefix(rows[len(rows)-1][0], "random init of") {
		t.Fatalf("compare CSV: %d rows (one model: %d), first %q, last %q", len(rows), len(one), rows[1], rows[len(rows)-1])
	}
	base := *a.Base
	base.Target = 6
	if _, err := CompareSettings(&Analysis{Model: m, Base: &base}, withClasses(t, r, 3)); err == nil ||
		!strings.Contains(err.Error(), "has 3 classes") {
		t.Errorf("a second model with fewer classes: %v", err)
	}
}

// withClasses is m with only n classes (a model the target does not fit).
func withClasses(t *testing.T, m *Model, n int) *Model {
	t.Helper()
	c := m.Model.Config
	c.Classes = n
	r, err := vit.NewRandom(c, 1)
	if err != nil {
		t.Fatal(err)
	}
	b := *m.Bundle
	b.Model = r
	return &Model{Bundle: &b, Name: "small"}
}
