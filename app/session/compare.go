package session

import (
	"fmt"

	"vitlens/vit"
)

// The comparison of two models on one image (the paper's trained model
// against its random initialisation, or B/32 against B/16).

// RandomSeed seeds "random init of this one", as `vitlens extract --random 0`.
const RandomSeed = 0

// RandomInit is a model of m's architecture with timm's initialisation
// (vit.NewRandom), keeping m's preprocessing and class names.
func (m *Model) RandomInit(seed uint64) (*Model, error) {
	r, err := vit.NewRandom(m.Model.Config, seed)
	if err != nil {
		return nil, err
	}
	b := *m.Bundle
	b.Model = r
	return &Model{Bundle: &b, Name: fmt.Sprintf("random init of %s (seed %d)", m.Name, seed)}, nil
}

// CompareSettings are the settings of the second model's analysis: the
// first's, reading out the class the first one read (its prediction when
// none was chosen), so both rank the same class.
func CompareSettings(first *Analysis, second *Model) (Settings, error) {
	s := first.Settings
	s.Target = first.Base.Target
	s.Lens = nil // translators are fitted for the first model only
	if c := second.Model.Config.Classes; s.Target >= c {
		return s, fmt.Errorf("%s has %d classes: it cannot rank class %d (%s) of the first model", second.Name, c,
			s.Target, first.Model.ClassName(s.Target))
	}
	return s, nil
}

// CompareCSV is the readouts of both analyses in one table, with the
// model's name in a first column.
func CompareCSV(analyses ...*Analysis) []byte {
	var rows [][]string
	for i, a := range analyses {
		for j, row := range a.readoutRows() {
			if j == 0 && i > 0 {
				continue // one header
			}
			name := a.Model.Name
			if j == 0 {
				name = "model"
			}
			rows = append(rows, append([]string{name}, row...))
		}
	}
	return writeCSV(rows)
}
