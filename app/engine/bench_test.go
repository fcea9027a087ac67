package engine

import (
	"math"
	"testing"

	"vitlens/app/session"
	"vitlens/vit"
	"vitlens/vit/bundle"
)

// What the app runs for one image of a B/16-sized random model: the lens on
// every site with attention maps and memory coefficients (session.Analyze
// through the engine), and the explanation maps (a click away for models
// this size), each part on its own and all together. Under Node
// (GOOS=js GOARCH=wasm) it profiles the browser's CPU path:
//
//	GOOS=js GOARCH=wasm go test -c -o /tmp/engine.test ./app/engine
//	cd app/engine && node --cpu-prof $(go env GOROOT)/lib/wasm/wasm_exec_node.js /tmp/engine.test \
//	  -test.run XXX -test.bench Analyze -test.benchtime 3x
//
// Each sub-benchmark also reports cpu-s/image, the least process CPU time
// (all threads) of one of its images: on a machine shared with other jobs,
// which stretch wall time, the figure to compare runs by. The least, so
// that the first image's one-time copy of the weights into the SIMD module
// does not count.
func BenchmarkAnalyze(b *testing.B) {
	e := &Engine{}
	c := vit.Config{ImageSize: 224, PatchSize: 16, Channels: 3, Dim: 768, Depth: 12, Heads: 12, MLPDim: 3072,
		Classes: 1000, QKVBias: true, LNEps: 1e-6, ClassToken: true, Pool: vit.PoolCLS}
	m, err := vit.NewRandom(c, 1)
	if err != nil {
		b.Fatal(err)
	}
	e.mu.Lock()
	e.models = map[int]*slot{}
	e.add(&session.Model{Bundle: &bundle.Bundle{Model: m}, Name: "random B/16"}, &Response{})
	e.mu.Unlock()
	id := e.next
	in := &session.Input{Pixels: vit.RandomImages(c, 1, 1)[0]}
	for _, bc := range []struct {
		name       string
		lens, expl bool
	}{{"lens", true, false}, {"explain", false, true}, {"full", true, true}} {
		b.Run(bc.name, func(b *testing.B) {
			least := math.Inf(1)
			for b.Loop() {
				c0 := processCPU()
				var resp *Response
				if bc.lens {
					resp = e.Handle(&Request{ID: 2, Kind: KindAnalyze, Model: id, Input: in,
						Settings: session.Settings{Target: -1}, Explain: bc.expl}, nil)
				} else {
					resp = e.Handle(&Request{ID: 2, Kind: KindExplain, Model: id, Input: in,
						Settings: session.Settings{Target: -1}}, nil)
				}
				if err := resp.Error(); err != nil {
					b.Fatal(err)
				}
				if bc.expl && (resp.Explain == nil || resp.Explain.Err != "") {
					b.Fatalf("explanation: %+v", resp.Explain)
				}
				least = min(least, processCPU()-c0)
			}
			b.ReportMetric(least, "cpu-s/image")
		})
	}
}
