package explain

import (
	"math"
	"testing"
	"time"

	"vitlens/vit"
	"vitlens/vit/vittest"
)

// The explanation maps of one image of a B/16-sized random model from its
// recorded forward, as the app's engine computes them after the lens's
// forward (MapRecorded: the paper's per-block maps and Chefer's rollout,
// one backward). Under Node with the matmul's helper threads it times the
// browser's explain stage:
//
//	GOOS=js GOARCH=wasm go test -c -o /tmp/explain.test ./vit/explain
//	VITLENS_THREADS=2 vit/wasmkernel/node_threads_exec /tmp/explain.test -test.run XXX -test.bench MapRecorded -test.benchtime 5x
//
// least-ms/image is the fastest image's wall time: on a machine shared with
// other jobs, which stretch wall time, the figure to compare runs by.
func BenchmarkMapRecorded(b *testing.B) {
	c := vittest.B16
	m, err := vit.NewRandom(c, 1)
	if err != nil {
		b.Fatal(err)
	}
	var rec vit.Activations
	if _, err := m.Forward(vit.RandomImages(c, 1, 1)[0], vit.Options{Record: &rec}); err != nil {
		b.Fatal(err)
	}
	least := math.Inf(1)
	for b.Loop() {
		start := time.Now()
		if _, err := MapRecorded(m, &rec, -1, Options{}); err != nil {
			b.Fatal(err)
		}
		least = min(least, float64(time.Since(start).Microseconds())/1e3)
	}
	b.ReportMetric(least, "least-ms/image")
}
