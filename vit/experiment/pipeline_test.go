package experiment

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"vitlens/vit"
	"vitlens/vit/bundle"
	"vitlens/vit/dataset"
	"vitlens/vit/lens"
	"vitlens/vit/vittest"
)

// pipelineCheck is a Pipeliner over the CPU that computes at Start and
// checks the runner's side of the contract: calls collected in the order
// they were started, never more than depth in flight.
type pipelineCheck struct {
	lens.Backend
	depth    int
	inflight []*checkedCall
	most     int
	err      error
}

type checkedCall struct {
	p   *pipelineCheck
	res []*lens.Result
	err error
}

func (c *pipelineCheck) Start(images []*vit.Tensor, req lens.Request) (lens.Pending, error) {
	res, err := c.Analyze(images, req)
	call := &checkedCall{p: c, res: res, err: err}
	c.inflight = append(c.inflight, call)
	c.most = max(c.most, len(c.inflight))
	if len(c.inflight) > c.depth && c.err == nil {
		c.err = fmt.Errorf("%d calls in flight, over %d", len(c.inflight), c.depth)
	}
	return call, nil
}

func (k *checkedCall) Wait() ([]*lens.Result, error) {
	p := k.p
	if len(p.inflight) == 0 || p.inflight[0] != k {
		if p.err == nil {
			p.err = fmt.Errorf("a call collected out of start order")
		}
	} else {
		p.inflight = p.inflight[1:]
	}
	return k.res, k.err
}

// A pipelined run (chunks decoded ahead, backend calls in flight across
// chunk boundaries) writes byte for byte the tables of a run that does one
// thing at a time: with batches of 3 cutting chunks of 4, skipped images,
// a chunk whose images are all skipped, the memories' extra tables, and a
// resume after a crash.
func TestPipelinedRunWritesTheSameTables(t *testing.T) {
	b := testBundle(t)
	root := folderWithBadImages(t)
	ds, err := dataset.Open("folder", root, dataset.Options{})
	if err != nil {
		t.Fatal(err)
	}
	files := func(dir string) map[string][]byte {
		out := map[string][]byte{}
		for _, table := range []string{"ranks", "images", "skipped", "memories", "class_value", "value_classes"} {
			if data, err := os.ReadFile(filepath.Join(dir, table+".parquet")); err == nil {
				out[table] = data
			}
		}
		return out
	}
	for _, spec := range []Spec{extractSpec, {Kind: Memories, Sites: []vit.Site{vit.SiteMLP}, TopK: 5, Layer: "mlp"}} {
		t.Run(string(spec.Kind), func(t *testing.T) {
			plain := t.TempDir()
			runPipelined(t, b, ds, plain, spec, 0, 0, nil)
			want := files(plain)
			if len(want) < 3 {
				t.Fatalf("only %d tables written", len(want))
			}
			for _, c := range []struct{ ahead, inflight int }{{2, 2}, {1, 3}, {3, 1}} {
				dir := t.TempDir()
				check := &pipelineCheck{Backend: lens.NewCPU(b.Model), depth: max(1, c.inflight)}
				st := runPipelined(t, b, ds, dir, spec, c.ahead, c.inflight, check)
				if st.Images != 10 || st.Skipped != 5 {
					t.Errorf("%+v: stats %+v, want 10 images and 5 skipped", c, st)
				}
				if check.err != nil {
					t.Errorf("%+v: %v", c, check.err)
				}
				if check.most != max(1, c.inflight) {
					t.Errorf("%+v: at most %d calls in flight, want %d", c, check.most, max(1, c.inflight))
				}
				if got := files(dir); !mapsEqual(got, want) {
					t.Errorf("%+v: the tables differ from an unpipelined run's", c)
				}
			}
			// Crash before chunk 2's commit and Finish; the pipelined resume
			// redoes only chunk 2.
			crashed := t.TempDir()
			runPipelined(t, b, ds, crashed, spec, 2, 2, nil)
			for _, f := range []string{"chunks/chunk-000002.done", "ranks.parquet", "images.parquet"} {
				if err := os.Remove(filepath.Join(crashed, f)); err != nil {
					t.Fatal(err)
				}
			}
			st := runPipelined(t, b, ds, crashed, spec, 2, 2, nil)
			if st.ResumedChunks != 3 || st.Images != 3 {
				t.Errorf("resume redid %+v, want only chunk 2 (3 images, 1 skipped)", st)
			}
			if got := files(crashed); !mapsEqual(got, want) {
				t.Error("the resumed pipelined run's tables differ from an unpipelined run's")
			}
		})
	}
}

func mapsEqual(a, b map[string][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

// folderWithBadImages is 15 images in chunks of 4 where images 4..7 (all
// of chunk 1) and 9 are unreadable.
func folderWithBadImages(t *testing.T) string {
	root := vittest.ImageFolder(t, 5, 20, 18, 1)
	for _, f := range []string{"class0/img04.png", "class1/img00.png", "class1/img01.png", "class1/img02.png", "class1/img04.png"} {
		if err := os.WriteFile(filepath.Join(root, f), []byte("\x89PNG\r\n\x1a\ncut"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// runPipelined is run with the pipeline's settings and, when not nil, another backend.
func runPipelined(t *testing.T, b *bundle.Bundle, ds dataset.Dataset, dir string, spec Spec, ahead, inflight int, backend lens.Backend) Stats {
	t.Helper()
	return runWith(t, b, ds, dir, spec, 0, 1, func(r *Runner) {
		r.DecodeAhead, r.InFlight = ahead, inflight
		if backend != nil {
			r.Backend = backend
		}
	})
}

// A run with Timings (`--timings`) writes the tables of one without, and
// every stage it went through, with the CPU backend's forward and lens,
// hears some time.
func TestTimedRunWritesTheSameTables(t *testing.T) {
	b := testBundle(t)
	ds, err := dataset.Open("folder", folderWithBadImages(t), dataset.Options{})
	if err != nil {
		t.Fatal(err)
	}
	plain, timed := t.TempDir(), t.TempDir()
	runPipelined(t, b, ds, plain, extractSpec, 2, 2, nil)
	var tm Timings
	cpu := lens.NewCPU(b.Model)
	cpu.Clock = new(lens.CPUClock)
	st := runWith(t, b, ds, timed, extractSpec, 0, 1, func(r *Runner) {
		r.DecodeAhead, r.InFlight, r.Backend, r.Timings = 2, 2, cpu, &tm
	})
	for _, table := range []string{"ranks", "images", "skipped"} {
		want, err1 := os.ReadFile(filepath.Join(plain, table+".parquet"))
		got, err2 := os.ReadFile(filepath.Join(timed, table+".parquet"))
		if err1 != nil || err2 != nil || !slices.Equal(got, want) {
			t.Errorf("%s: the timed run's table differs (%v, %v)", table, err1, err2)
		}
	}
	for _, s := range []Stage{StageDecode, StageBackend, StageRows, StageWrite} {
		if tm[s] <= 0 {
			t.Errorf("%s: no time recorded", StageNames[s])
		}
	}
	if cpu.Clock.Forward() <= 0 || cpu.Clock.Lens() <= 0 || st.Finishing <= 0 {
		t.Errorf("forward %v, lens %v, finishing %v: want each above 0", cpu.Clock.Forward(), cpu.Clock.Lens(), st.Finishing)
	}
}
