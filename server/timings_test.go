package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"vitlens/vit/bundle"
	"vitlens/vit/experiment"
	"vitlens/vit/lens"
)

// --timings names every phase and stage, the forward and the lens of the
// CPU backend, and the totals.
func TestPrintTimings(t *testing.T) {
	d, err := bundle.Demo(bundle.Options{})
	if err != nil {
		t.Fatal(err)
	}
	clock := newStageClock()
	clock.lap("opening")
	clock.lap("running the chunks")
	cpu := lens.NewCPU(d.Model)
	cpu.Clock = new(lens.CPUClock)
	r := &experiment.Runner{Backend: cpu, Timings: &experiment.Timings{experiment.StageBackend: 1500 * time.Millisecond}}
	var out bytes.Buffer
	printTimings(&out, clock, r, experiment.Stats{Images: 3, Finishing: time.Second})
	text := out.String()
	want := append([]string{"3 images", "opening", "running the chunks", "total", "forward", "lens",
		"finishing the tables", "garbage collection", "1.50 s wall"}, experiment.StageNames[:]...)
	for _, w := range want {
		if !strings.Contains(text, w) {
			t.Errorf("no %q in:\n%s", w, text)
		}
	}
}
