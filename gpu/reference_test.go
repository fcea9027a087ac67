package gpu

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"vitlens/vit"
	"vitlens/vit/checkpoint"
	"vitlens/vit/lens"
	"vitlens/vit/vittest"
)

// The GPU backend against PyTorch's own tensors (tools/reference/
// make_golden.py → testdata/reference/): logits and every tap within
// 1e-4·max(1,|torch|), lens ranks against ranks of torch's full class logits
// (identical except true ties), and the interventions.

const refDir = "../testdata/reference"

type golden struct {
	t      map[string]*vit.Tensor
	config vit.Config
}

func loadGolden(t *testing.T, fixture string) golden {
	t.Helper()
	path := filepath.Join(refDir, fixture, "golden.safetensors")
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		t.Skipf("no fixture %s", path)
	}
	if err != nil {
		t.Fatal(err)
	}
	tensors, meta, _, err := checkpoint.ReadTensors(path, data)
	if err != nil {
		t.Fatal(err)
	}
	var c vit.Config
	if err := json.Unmarshal([]byte(meta["config"]), &c); err != nil {
		t.Fatalf("%s: config metadata: %v", path, err)
	}
	return golden{t: tensors, config: c}
}

func (g golden) get(t *testing.T, key string) *vit.Tensor {
	t.Helper()
	v, ok := g.t[key]
	if !ok {
		t.Fatalf("golden has no %q", key)
	}
	return v
}

func (g golden) inputs() []*vit.Tensor {
	var in []*vit.Tensor
	for i := 0; ; i++ {
		x, ok := g.t[fmt.Sprintf("input.%d", i)]
		if !ok {
			return in
		}
		in = append(in, x)
	}
}

// expectClose checks got against torch's want and returns the worst
// relative error, for the log.
func expectClose(t *testing.T, what string, got, want []float32) float64 {
	t.Helper()
	w := worstRel(got, want)
	if !(w <= modelTol) {
		t.Errorf("%s: worst relative error %.3g against torch", what, w)
	}
	return w
}

func TestBackendMatchesTorch(t *testing.T) {
	for _, fixture := range []string{"tiny", "odd", "nobias", "gap", "ls_reg", "clip", "deit_dist"} {
		t.Run(fixture, func(t *testing.T) {
			g := loadGolden(t, fixture)
			m, _, err := checkpoint.Load(filepath.Join(refDir, fixture, "timm.safetensors"), checkpoint.Options{Override: &vit.Config{Heads: g.config.Heads}})
			if err != nil {
				t.Fatal(err)
			}
			// The CLIP-style tower's fixture reads classes through its head file.
			if data, err := os.ReadFile(filepath.Join(refDir, fixture, "head.safetensors")); err == nil {
				head, err := checkpoint.ReadHead("head.safetensors", data)
				if err == nil {
					err = checkpoint.ApplyHead(m, head)
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			b := newBackend(t, m)
			c := m.Config
			in := g.inputs()
			last := c.Depth - 1
			// One batch: all sites through the lens against class 0, every tap.
			res, err := b.Analyze(in, lens.Request{Sites: vit.AllSites(), TopK: 5, Targets: make([]int, len(in)), Taps: allTaps()})
			if err != nil {
				t.Fatal(err)
			}
			worst := 0.0
			check := func(what string, got, want []float32) { worst = math.Max(worst, expectClose(t, what, got, want)) }
			for i, r := range res {
				tr := r.Trace
				check(fmt.Sprintf("logits.%d", i), r.Logits, g.get(t, fmt.Sprintf("logits.%d", i)).Data)
				check(fmt.Sprintf("embed.%d", i), tr.Embed.Data, g.get(t, fmt.Sprintf("embed.%d", i)).Data)
				for blk := 0; blk <= last; blk++ {
					for s := range vit.NumSites {
						key := fmt.Sprintf("%s.%d.%d", s, blk, i)
						check(key, tr.Site(s, blk).Data, g.get(t, key).Data)
					}
					for key, got := range map[string]*vit.Tensor{"attn_probs": tr.AttnProbs[blk], "values": tr.Values[blk], "fc1": tr.FC1[blk]} {
						key = fmt.Sprintf("%s.%d.%d", key, blk, i)
						if want, ok := g.t[key]; ok {
							check(key, got.Data, want.Data)
						}
					}
					for si, s := range vit.AllSites() {
						full := g.get(t, fmt.Sprintf("lens.%s.%d.%d", s, blk, i)).Data
						ro := r.Readouts[si*c.Depth+blk]
						for tok := range ro.Rank {
							row := full[tok*c.Classes : (tok+1)*c.Classes]
							if _, problem := lensCheck(row, 0, int(ro.Rank[tok]), ro.TargetLogit[tok], ro.TopOf(tok), modelTol); problem != "" {
								t.Errorf("lens %s block %d token %d of image %d: %s (torch)", s, blk, tok, i, problem)
							}
						}
					}
				}
			}
			t.Logf("logits and taps: worst relative error %.2e against torch", worst)
			if !c.ClassToken {
				return
			}
			for _, edit := range []vit.AttnEdit{vit.EditSelfOnly, vit.EditNoCLS} {
				res, err := b.Analyze(in, lens.Request{Sites: []vit.Site{vit.SiteHS}, TopK: 5, Edit: edit, Taps: vit.TapSites(vit.SiteHS)})
				if err != nil {
					t.Fatal(err)
				}
				for i, r := range res {
					expectClose(t, fmt.Sprintf("%s.logits.%d", edit, i), r.Logits, g.get(t, fmt.Sprintf("%s.logits.%d", edit, i)).Data)
					key := fmt.Sprintf("%s.hs.%d.%d", edit, last, i)
					expectClose(t, key, r.Trace.Site(vit.SiteHS, last).Data, g.get(t, key).Data)
				}
			}
			var keeps [][]int
			for i := range in {
				kt := g.get(t, fmt.Sprintf("keep.tokens.%d", i))
				keep := make([]int, len(kt.Data))
				for j, v := range kt.Data {
					keep[j] = int(v)
				}
				keeps = append(keeps, keep)
			}
			res, err = b.Analyze(in, lens.Request{Sites: []vit.Site{vit.SiteHS}, TopK: 5, Keep: keeps, Taps: vit.TapSites(vit.SiteHS)})
			if err != nil {
				t.Fatal(err)
			}
			for i, r := range res {
				expectClose(t, fmt.Sprintf("keep.logits.%d", i), r.Logits, g.get(t, fmt.Sprintf("keep.logits.%d", i)).Data)
				key := fmt.Sprintf("keep.hs.%d.%d", last, i)
				expectClose(t, key, r.Trace.Site(vit.SiteHS, last).Data, g.get(t, key).Data)
			}
		})
	}
}

// The clip fixture through its head file with "normalize": "true": logits
// and every lens readout against torch's (entropy and KL to the last block
// from torch's normalised logits too), with the targets given and predicted.
func TestBackendNormalizedHeadMatchesTorch(t *testing.T) {
	g := loadGolden(t, "clip")
	m, _, err := checkpoint.Load(filepath.Join(refDir, "clip", "timm.safetensors"), checkpoint.Options{Override: &vit.Config{Heads: g.config.Heads}})
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(refDir, "clip", "head_normalize.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	head, err := checkpoint.ReadHead("head_normalize.safetensors", data)
	if err == nil {
		err = checkpoint.ApplyHead(m, head)
	}
	if err != nil || m.Normalize == nil {
		t.Fatalf("normalising head: %v", err)
	}
	b := newBackend(t, m)
	c := m.Config
	in := g.inputs()
	for _, targets := range [][]int{make([]int, len(in)), nil} {
		res, err := b.Analyze(in, lens.Request{Sites: vit.AllSites(), TopK: 5, Targets: targets})
		if err != nil {
			t.Fatal(err)
		}
		logq := make([]float64, c.Classes)
		for i, r := range res {
			want := g.get(t, fmt.Sprintf("normalize.logits.%d", i)).Data
			expectClose(t, fmt.Sprintf("normalize.logits.%d", i), r.Logits, want)
			// Entropy and KL to the last block between the normalised
			// distributions, from torch's logits.
			final := lens.LogSoftmaxRows(g.get(t, fmt.Sprintf("normalize.lens.%s.%d.%d", vit.SiteHS, c.Depth-1, i)).Data, c.Classes)
			for blk := range c.Depth {
				for si, s := range vit.AllSites() {
					full := g.get(t, fmt.Sprintf("normalize.lens.%s.%d.%d", s, blk, i)).Data
					ro := r.Readouts[si*c.Depth+blk]
					for tok := range ro.Rank {
						row := full[tok*c.Classes : (tok+1)*c.Classes]
						if _, problem := lensCheck(row, r.Target, int(ro.Rank[tok]), ro.TargetLogit[tok], ro.TopOf(tok), modelTol); problem != "" {
							t.Errorf("targets %v: lens %s block %d token %d of image %d: %s (torch)", targets, s, blk, tok, i, problem)
						}
						lens.LogSoftmax(logq, row)
						wantH, wantKL := lens.EntropyKL(logq, final[tok*c.Classes:(tok+1)*c.Classes])
						eH := math.Abs(float64(ro.Entropy[tok])-wantH) / math.Max(1, wantH)
						eKL := math.Abs(float64(ro.KL[tok])-wantKL) / math.Max(1, wantKL)
						if !(eH <= statsTol && eKL <= statsTol) { // NaN fails too
							t.Errorf("targets %v: lens %s block %d token %d of image %d: entropy %g, KL %g; torch's logits give %g, %g", targets, s, blk, tok, i, ro.Entropy[tok], ro.KL[tok], wantH, wantKL)
						}
					}
				}
			}
		}
	}
}

// One B/16-sized forward (random splitmix weights shared with the torch
// script): the kernels at real shapes (197 tokens, dim 768, 1000 classes).
func TestBackendB16MatchesTorch(t *testing.T) {
	if testing.Short() {
		t.Skip("B/16 forward skipped in -short mode")
	}
	g := loadGolden(t, "b16")
	m, _, err := checkpoint.FromTensors("splitmix-b16", vittest.SplitmixTensors(g.config), nil, checkpoint.Options{Override: &g.config})
	if err != nil {
		t.Fatal(err)
	}
	b := newBackend(t, m)
	start := time.Now()
	res, err := b.Analyze([]*vit.Tensor{g.get(t, "input.0")}, lens.Request{Sites: []vit.Site{vit.SiteHS}, TopK: 5, Taps: vit.TapSites(vit.SiteHS)})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("B/16 forward + lens of hs at 12 blocks on %s: %v (lavapipe timings mean nothing for speed)", b.Name(), time.Since(start))
	r := res[0]
	expectClose(t, "logits.0", r.Logits, g.get(t, "logits.0").Data)
	expectClose(t, "hs.5.0", r.Trace.Site(vit.SiteHS, 5).Data, g.get(t, "hs.5.0").Data)
	expectClose(t, "hs.11.0", r.Trace.Site(vit.SiteHS, 11).Data, g.get(t, "hs.11.0").Data)
	// The lens on the final block against the CPU's projection of the same vectors.
	proj := lens.NewProjector(m)
	hs := r.Trace.Site(vit.SiteHS, 11)
	logits := proj.Direct(hs.Data, hs.Shape[0])
	ro := r.Readouts[11]
	for tok := range ro.Rank {
		if _, problem := lensCheck(logits[tok*1000:(tok+1)*1000], r.Target, int(ro.Rank[tok]), ro.TargetLogit[tok], ro.TopOf(tok), modelTol); problem != "" {
			t.Errorf("lens hs block 11 token %d: %s", tok, problem)
		}
	}
}

// The trained demo model, when it is there, on a batch of 8.
func TestBackendDemoModel(t *testing.T) {
	path := "../public/models/fmnist-vit.safetensors"
	if _, err := os.Stat(path); err != nil {
		t.Skipf("no demo model at %s", path)
	}
	m, _, err := checkpoint.Load(path, checkpoint.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b := newBackend(t, m)
	images := vit.RandomImages(m.Config, 8, 3)
	for _, req := range []lens.Request{
		{Sites: vit.AllSites(), TopK: 5},
		{Sites: []vit.Site{vit.SiteHS}, TopK: 5, Targets: []int{0, 1, 2, 3, 4, 5, 6, 7}, Edit: vit.EditNoCLS},
	} {
		got, err := b.Analyze(images, req)
		if err != nil {
			t.Fatal(err)
		}
		compareResults(t, m, images, req, got)
	}
}

func TestBackendErrors(t *testing.T) {
	m := randomModel(t, cfgCLS, 3)
	b := newBackend(t, m)
	if !strings.Contains(b.Name(), "webgpu: ") {
		t.Errorf("Name() = %q", b.Name())
	}
	if desc, ok := Available(); !ok || desc == "" {
		t.Errorf("Available() = %q, %v with a working backend", desc, ok)
	}
	imgs := vit.RandomImages(cfgCLS, 2, 1)
	for _, tc := range []struct {
		req  lens.Request
		want string
	}{
		{lens.Request{TopK: 17}, "top-k"},
		{lens.Request{TopK: 5, Keep: [][]int{{1, 2}, nil}}, "image 0: token selection must keep the [CLS] token"},
		{lens.Request{TopK: 5, Keep: [][]int{nil, {0, 3, 3}}}, "image 1: token 3 kept twice"},
		{lens.Request{TopK: 5, Keep: [][]int{nil, {0, 99}}}, "image 1: token 99 out of range"},
		{lens.Request{TopK: 5, Targets: []int{0, 37}}, "target class 37 out of range"},
	} {
		if _, err := b.Analyze(imgs, tc.req); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want one containing %q", tc.req, err, tc.want)
		}
	}
	if _, err := b.Analyze([]*vit.Tensor{vit.NewTensor(3, 8, 8)}, lens.Request{TopK: 5}); err == nil || !strings.Contains(err.Error(), "image 0: input is [3 8 8]") {
		t.Errorf("wrong image size: %v", err)
	}
	// A budget below one image's needs is refused, naming what does not fit.
	tiny, err := New(m, Options{MemoryBudget: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer tiny.Close()
	if _, err := tiny.Analyze(imgs, lens.Request{TopK: 5, Taps: allTaps()}); err == nil || !strings.Contains(err.Error(), "memory budget") {
		t.Errorf("tiny budget: %v", err)
	}
}

// Batches that do not fit the budget (or MaxBatch) are split, with the
// same results as one batch.
func TestBackendSplitsBatches(t *testing.T) {
	m := randomModel(t, cfgCLS, 4)
	images := vit.RandomImages(cfgCLS, 5, 9)
	req := lens.Request{Sites: vit.AllSites(), TopK: 5, Taps: vit.Taps{AttnProbs: true}}
	whole := newBackend(t, m)
	want, err := whole.Analyze(images, req)
	if err != nil {
		t.Fatal(err)
	}
	one := planSizes(cfgCLS, planKey{batch: 1, n: cfgCLS.NumTokens(), k: 5, taps: req.Taps}, req.Sites, 0).total
	for _, opt := range []Options{{MaxBatch: 2}, {MemoryBudget: int64(2*one + one/2)}} {
		b, err := New(m, opt)
		if err != nil {
			t.Fatal(err)
		}
		got, err := b.Analyze(images, req)
		b.Close()
		if err != nil {
			t.Fatal(err)
		}
		for i := range got {
			if w := worstRel(got[i].Logits, want[i].Logits); w > 1e-6 {
				t.Errorf("%+v image %d: logits differ from the unsplit batch by %g", opt, i, w)
			}
			for j, r := range got[i].Readouts {
				if fmt.Sprint(r.Rank, r.Top, r.Entropy, r.KL) != fmt.Sprint(want[i].Readouts[j].Rank, want[i].Readouts[j].Top, want[i].Readouts[j].Entropy, want[i].Readouts[j].KL) {
					t.Errorf("%+v image %d readout %d differs from the unsplit batch", opt, i, j)
				}
			}
			if w := worstRel(got[i].Trace.AttnProbs[1].Data, want[i].Trace.AttnProbs[1].Data); w > 1e-6 {
				t.Errorf("%+v image %d: attention taps differ by %g", opt, i, w)
			}
		}
	}
}
