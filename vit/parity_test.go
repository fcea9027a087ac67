package vit_test

// Reference parity: the pure-Go forward against PyTorch/torchvision tensors
// dumped by tools/reference/make_golden.py into testdata/reference/.
// Tolerance: |go − torch| ≤ 1e-4·max(1, |torch|) for logits and every tap.

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"vitlens/vit"
	"vitlens/vit/checkpoint"
	"vitlens/vit/lens"
	"vitlens/vit/vittest"
)

const refDir = "../testdata/reference"

const tol = 1e-4

type golden struct {
	*vittest.Golden
	config vit.Config
}

func loadGolden(t *testing.T, fixture string) golden {
	t.Helper()
	g := vittest.Load(t, fixture)
	c, err := g.Config()
	if err != nil {
		t.Fatal(err)
	}
	return golden{g, c}
}

func (g golden) get(t *testing.T, key string) *vit.Tensor {
	t.Helper()
	return g.MustTensor(t, key)
}

// closeTo reports the worst violation of the tolerance, or "" when within it.
func closeTo(got, want []float32) (worst float64, at int, ok bool) {
	if len(got) != len(want) {
		return math.Inf(1), -1, false
	}
	ok = true
	for i := range got {
		d := math.Abs(float64(got[i]-want[i])) / math.Max(1, math.Abs(float64(want[i])))
		if d > worst || math.IsNaN(d) {
			worst, at = d, i
		}
	}
	return worst, at, worst <= tol
}

func expectClose(t *testing.T, what string, got, want []float32) {
	t.Helper()
	if worst, at, ok := closeTo(got, want); !ok {
		t.Errorf("%s: worst relative error %.3g at %d (got %v, want %v)", what, worst, at, at0(got, at), at0(want, at))
	}
}

func at0(v []float32, i int) any {
	if i < 0 || i >= len(v) {
		return len(v)
	}
	return v[i]
}

var fixtures = []struct {
	name     string
	families []string // checkpoint files that hold the same weights
}{
	{"tiny", []string{"timm.safetensors", "torchvision.safetensors", "torchvision.pth", "hf/model.safetensors"}},
	{"odd", []string{"timm.safetensors", "torchvision.safetensors", "torchvision.pth", "hf/model.safetensors"}},
	{"nobias", []string{"timm.safetensors"}},
	{"gap", []string{"timm.safetensors"}},
	{"deit_dist", []string{"timm.safetensors"}}, // tools/reference/make_backbones.py
	{"ls_reg", []string{"timm.safetensors"}},
	{"dinov2", []string{"timm.safetensors"}},
}

func TestForwardMatchesTorch(t *testing.T) {
	for _, fx := range fixtures {
		g := loadGolden(t, fx.name)
		for _, file := range fx.families {
			t.Run(fx.name+"/"+file, func(t *testing.T) {
				// torchvision.pth carries no head count; every other file does.
				m, _, err := checkpoint.Load(filepath.Join(refDir, fx.name, file), checkpoint.Options{Override: &vit.Config{Heads: g.config.Heads}})
				if err != nil {
					t.Fatal(err)
				}
				if m.Config != g.config {
					t.Fatalf("config %+v, torch used %+v", m.Config, g.config)
				}
				checkFixture(t, m, g)
			})
		}
	}
}

func checkFixture(t *testing.T, m *vit.Model, g golden) {
	all := vit.Taps{Embed: true, AttnProbs: true, Values: true, FC1: true}
	for s := range vit.NumSites {
		all.Sites[s] = true
	}
	last := m.Config.Depth - 1
	for i := 0; ; i++ {
		if !g.Has(fmt.Sprintf("input.%d", i)) {
			if i == 0 {
				t.Fatal("no inputs")
			}
			break
		}
		in := g.get(t, fmt.Sprintf("input.%d", i))
		tr, err := m.Forward(in, vit.Options{Taps: all})
		if err != nil {
			t.Fatal(err)
		}
		expectClose(t, fmt.Sprintf("logits.%d", i), tr.Logits, g.get(t, fmt.Sprintf("logits.%d", i)).Data)
		expectClose(t, fmt.Sprintf("embed.%d", i), tr.Embed.Data, g.get(t, fmt.Sprintf("embed.%d", i)).Data)
		for b := 0; b <= last; b++ {
			for s := range vit.NumSites {
				key := fmt.Sprintf("%s.%d.%d", s, b, i)
				expectClose(t, key, tr.Site(s, b).Data, g.get(t, key).Data)
			}
			for key, got := range map[string]*vit.Tensor{"attn_probs": tr.AttnProbs[b], "values": tr.Values[b], "fc1": tr.FC1[b]} {
				key = fmt.Sprintf("%s.%d.%d", key, b, i)
				expectClose(t, key, got.Data, g.get(t, key).Data)
			}
		}
		checkLens(t, m, g, in, i)
		if !m.Config.ClassToken {
			continue
		}
		for _, edit := range []vit.AttnEdit{vit.EditSelfOnly, vit.EditNoCLS} {
			tr, err := m.Forward(in, vit.Options{Edit: edit, Taps: vit.TapSites(vit.SiteHS)})
			if err != nil {
				t.Fatal(err)
			}
			expectClose(t, fmt.Sprintf("%s.logits.%d", edit, i), tr.Logits, g.get(t, fmt.Sprintf("%s.logits.%d", edit, i)).Data)
			expectClose(t, fmt.Sprintf("%s.hs.%d.%d", edit, last, i), tr.Site(vit.SiteHS, last).Data, g.get(t, fmt.Sprintf("%s.hs.%d.%d", edit, last, i)).Data)
		}
		keep64, err := g.Int64s(fmt.Sprintf("keep.tokens.%d", i))
		if err != nil {
			t.Fatal(err)
		}
		keep := make([]int, len(keep64))
		for j, v := range keep64 {
			keep[j] = int(v)
		}
		tr, err = m.Forward(in, vit.Options{Keep: keep, Taps: vit.TapSites(vit.SiteHS)})
		if err != nil {
			t.Fatal(err)
		}
		expectClose(t, fmt.Sprintf("keep.logits.%d", i), tr.Logits, g.get(t, fmt.Sprintf("keep.logits.%d", i)).Data)
		expectClose(t, fmt.Sprintf("keep.hs.%d.%d", last, i), tr.Site(vit.SiteHS, last).Data, g.get(t, fmt.Sprintf("keep.hs.%d.%d", last, i)).Data)
	}
}

// checkLens compares the lens readouts with ranks and top-5 computed from
// torch's full class logits of every token (ranks exactly, except true ties).
func checkLens(t *testing.T, m *vit.Model, g golden, in *vit.Tensor, i int) {
	C := m.Config.Classes
	for _, target := range []int{0, C - 1} {
		res, err := lens.NewCPU(m).Analyze([]*vit.Tensor{in}, lens.Request{Sites: vit.AllSites(), TopK: 5, Targets: []int{target}})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range vit.AllSites() {
			for b := 0; b < m.Config.Depth; b++ {
				ref := g.get(t, fmt.Sprintf("lens.%s.%d.%d", s, b, i)).Data
				r := res[0].At(s, b)
				for tok := range r.Rank {
					row := ref[tok*C : (tok+1)*C]
					if d := math.Abs(float64(r.TargetLogit[tok] - row[target])); d > tol*math.Max(1, math.Abs(float64(row[target]))) {
						t.Errorf("lens %s block %d token %d: target logit %g, torch %g", s, b, tok, r.TargetLogit[tok], row[target])
					}
					if want := lens.Rank(row, target); int(r.Rank[tok]) != want && !nearTie(row, target, tol) {
						t.Errorf("lens %s block %d token %d: rank %d, torch %d", s, b, tok, r.Rank[tok], want)
					}
					want := make([]int32, 5)
					lens.TopK(want, row)
					for k, c := range r.TopOf(tok) {
						if c != want[k] && !nearTie(row, int(want[k]), tol) {
							t.Errorf("lens %s block %d token %d: top-5 %v, torch %v", s, b, tok, r.TopOf(tok), want)
							break
						}
					}
				}
			}
		}
	}
}

// nearTie reports whether another class's logit is within eps of the target's.
func nearTie(row []float32, target int, eps float64) bool {
	for c, v := range row {
		if c != target && math.Abs(float64(v-row[target])) <= eps*math.Max(1, math.Abs(float64(row[target]))) {
			return true
		}
	}
	return false
}

// B/16-sized random weights end to end: the weights come from a generator
// that tools/reference/splitmix.py and vittest share, so only outputs are
// committed.
func TestB16MatchesTorch(t *testing.T) {
	if testing.Short() {
		t.Skip("B/16 forward skipped in -short mode")
	}
	g := loadGolden(t, "b16")
	m, _, err := checkpoint.FromTensors("splitmix-b16", vittest.SplitmixTensors(g.config), nil, checkpoint.Options{Override: &g.config})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := m.Forward(g.get(t, "input.0"), vit.Options{Taps: vit.TapSites(vit.SiteHS)})
	if err != nil {
		t.Fatal(err)
	}
	expectClose(t, "logits.0", tr.Logits, g.get(t, "logits.0").Data)
	expectClose(t, "hs.5.0", tr.Site(vit.SiteHS, 5).Data, g.get(t, "hs.5.0").Data)
	expectClose(t, "hs.11.0", tr.Site(vit.SiteHS, 11).Data, g.get(t, "hs.11.0").Data)
}

// A CLIP-style tower (norm_pre, QuickGELU from config.json, a bias-free
// projection head) read through a class head file: logits, taps, edits and
// the lens against tools/reference/make_backbones.py's "clip" fixture.
func TestCLIPTowerThroughHeadFile(t *testing.T) {
	g := loadGolden(t, "clip")
	dir := filepath.Join(refDir, "clip")
	m, _, err := checkpoint.Load(filepath.Join(dir, "timm.safetensors"), checkpoint.Options{Override: &vit.Config{Heads: g.config.Heads}})
	if err != nil {
		t.Fatal(err)
	}
	if m.Config.Act != vit.ActQuickGELU || !m.Config.NormPre || m.Config.Classes != 12 {
		t.Fatalf("config %+v: want quick_gelu from config.json, norm_pre, a 12-wide projection", m.Config)
	}
	head := applyHeadFile(t, m, filepath.Join(dir, "head.safetensors"))
	if m.Config != g.config || !slices.Equal(head.ClassNames, []string{"cat", "dog", "car", "tree", "cup"}) {
		t.Fatalf("config %+v, names %v; torch used %+v", m.Config, head.ClassNames, g.config)
	}
	checkFixture(t, m, g)
}

// The clip fixture's head file with "normalize": "true": the embedding is
// L2-normalised before the head (zero-shot CLIP). The model's logits and
// every lens readout, folded and direct, against torch's; the head's bias
// makes some ranks differ from the plain head's (make_backbones.py checks).
func TestCLIPTowerNormalizedHead(t *testing.T) {
	g := loadGolden(t, "clip")
	dir := filepath.Join(refDir, "clip")
	m, _, err := checkpoint.Load(filepath.Join(dir, "timm.safetensors"), checkpoint.Options{Override: &vit.Config{Heads: g.config.Heads}})
	if err != nil {
		t.Fatal(err)
	}
	if head := applyHeadFile(t, m, filepath.Join(dir, "head_normalize.safetensors")); !head.Normalize || m.Normalize == nil {
		t.Fatal(`"normalize": "true" not read`)
	}
	p := lens.NewProjector(m)
	for i := range 2 {
		tr, err := m.Forward(g.get(t, fmt.Sprintf("input.%d", i)), vit.Options{Taps: vit.TapSites(vit.AllSites()...)})
		if err != nil {
			t.Fatal(err)
		}
		expectClose(t, fmt.Sprintf("normalize.logits.%d", i), tr.Logits, g.get(t, fmt.Sprintf("normalize.logits.%d", i)).Data)
		for b := range m.Config.Depth {
			for _, s := range vit.AllSites() {
				key := fmt.Sprintf("normalize.lens.%s.%d.%d", s, b, i)
				h := tr.Site(s, b).Data
				n := len(h) / m.Config.Dim
				expectClose(t, key+" (direct)", p.Direct(h, n), g.get(t, key).Data)
				raw := p.Raw(nil, h, n)
				folded := make([]float32, len(raw))
				C, D := p.Classes, p.Dim
				for t := 0; t < n; t++ {
					p.FinishRow(folded[t*C:(t+1)*C], raw[t*C:(t+1)*C], h[t*D:(t+1)*D])
				}
				for r, sc := range p.NormScales(h, n) {
					m.RescaleLogits(folded[r*C:(r+1)*C], sc)
				}
				expectClose(t, key+" (folded)", folded, g.get(t, key).Data)
			}
		}
	}
	// The CPU lens backend both ways: the folded one rescales each site's
	// rows by factors computed before its token pass.
	imgs := []*vit.Tensor{g.get(t, "input.0"), g.get(t, "input.1")}
	const target = 1
	for _, folded := range []bool{true, false} {
		cpu := lens.NewCPU(m)
		cpu.Folded = &folded
		res, err := cpu.Analyze(imgs, lens.Request{Sites: vit.AllSites(), TopK: 1, Targets: []int{target, target}})
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range res {
			for _, ro := range r.Readouts {
				key := fmt.Sprintf("normalize.lens.%s.%d.%d", ro.Site, ro.Block, i)
				full := g.get(t, key).Data
				want := make([]float32, len(ro.TargetLogit))
				for tok := range want {
					want[tok] = full[tok*m.Config.Classes+target]
				}
				expectClose(t, fmt.Sprintf("%s target logit (lens.CPU, folded %v)", key, folded), ro.TargetLogit, want)
			}
		}
	}
}

// Hugging Face's names for the same weights (make_backbones.py, hf/):
// Dinov2Model has no head, so its output is the normed [CLS] (an identity
// head, classes = dim) and every block's stream is the timm fixture's;
// CLIPVisionModelWithProjection has no patch bias (torch ran the tower with
// a zero one) and reads through the head file. Dinov2ForImageClassification's
// classifier over [CLS] and the patch mean is refused, saying why.
func TestHuggingFaceBackbones(t *testing.T) {
	t.Run("dinov2", func(t *testing.T) {
		g := loadGolden(t, "dinov2")
		m, info, err := checkpoint.Load(filepath.Join(refDir, "dinov2", "hf", "model.safetensors"), checkpoint.Options{})
		if err != nil {
			t.Fatal(err)
		}
		want := g.config
		want.Classes = want.Dim
		if info.Family != checkpoint.HFDINOv2 || m.Config != want {
			t.Fatalf("family %s, config %+v; want %s, %+v", info.Family, m.Config, checkpoint.HFDINOv2, want)
		}
		hs := vit.Taps{}
		hs.Sites[vit.SiteHS] = true
		for i := range 2 {
			tr, err := m.Forward(g.get(t, fmt.Sprintf("input.%d", i)), vit.Options{Taps: hs})
			if err != nil {
				t.Fatal(err)
			}
			expectClose(t, fmt.Sprintf("hf.pooled.%d", i), tr.Logits, g.get(t, fmt.Sprintf("hf.pooled.%d", i)).Data)
			for b := range m.Config.Depth {
				key := fmt.Sprintf("hs.%d.%d", b, i)
				expectClose(t, key, tr.Site(vit.SiteHS, b).Data, g.get(t, key).Data)
			}
		}
		cj, err := os.ReadFile(filepath.Join(refDir, "dinov2", "hf", "config.json"))
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = checkpoint.Load(filepath.Join(refDir, "dinov2", "hf_classifier.safetensors"), checkpoint.Options{ConfigJSON: cj})
		if err == nil || !strings.Contains(err.Error(), "reads [CLS] and the mean of the patch tokens together, not one token") ||
			!strings.Contains(err.Error(), "classifier.weight") || !strings.Contains(err.Error(), "--head") {
			t.Errorf("Dinov2ForImageClassification: %v", err)
		}
	})
	t.Run("clip", func(t *testing.T) {
		g := loadGolden(t, "clip")
		dir := filepath.Join(refDir, "clip")
		m, info, err := checkpoint.Load(filepath.Join(dir, "hf", "model.safetensors"), checkpoint.Options{})
		if err != nil {
			t.Fatal(err)
		}
		applyHeadFile(t, m, filepath.Join(dir, "head.safetensors"))
		if info.Family != checkpoint.HFCLIP || m.Config != g.config {
			t.Fatalf("family %s, config %+v; want %s, %+v", info.Family, m.Config, checkpoint.HFCLIP, g.config)
		}
		for i := range 2 {
			tr, err := m.Forward(g.get(t, fmt.Sprintf("input.%d", i)), vit.Options{})
			if err != nil {
				t.Fatal(err)
			}
			expectClose(t, fmt.Sprintf("hf.logits.%d", i), tr.Logits, g.get(t, fmt.Sprintf("hf.logits.%d", i)).Data)
		}
	})
}

// applyHeadFile reads a head file and makes it m's class embedding.
func applyHeadFile(t *testing.T, m *vit.Model, path string) *checkpoint.ClassHead {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	head, err := checkpoint.ReadHead(filepath.Base(path), data)
	if err == nil {
		err = checkpoint.ApplyHead(m, head)
	}
	if err != nil {
		t.Fatal(err)
	}
	return head
}

// Each activation against torch's on a grid over [-6, 6] (the clip fixture
// holds F.gelu, F.gelu(approximate="tanh") and x·sigmoid(1.702x)).
func TestActivationsMatchTorch(t *testing.T) {
	g := loadGolden(t, "clip")
	x := g.get(t, "act.x").Data
	for _, act := range []vit.Activation{vit.ActGELU, vit.ActGELUTanh, vit.ActQuickGELU} {
		c := vit.Config{Act: act}
		got := slices.Clone(x)
		c.Activate(got)
		expectClose(t, "act."+string(act), got, g.get(t, "act."+string(act)).Data)
	}
}

// Another image size than the checkpoint's: the position embedding's patch
// rows are resized as timm's resample_abs_pos_embed does (torch bicubic,
// antialiased; prefix rows untouched), shrinking (deit_dist, 32 → 24 px)
// and growing (ls_reg, no_embed_class, 32 → 48 px).
func TestPosEmbedInterpolationMatchesTorch(t *testing.T) {
	for fixture, size := range map[string]int{"deit_dist": 24, "ls_reg": 48} {
		g := loadGolden(t, fixture)
		m, _, err := checkpoint.Load(filepath.Join(refDir, fixture, "timm.safetensors"),
			checkpoint.Options{Override: &vit.Config{Heads: g.config.Heads, ImageSize: size}})
		if err != nil {
			t.Fatal(err)
		}
		key := fmt.Sprintf("resized.%d.", size)
		want := g.get(t, key+"pos_embed").Data
		got := m.PosEmbed
		if len(got) != len(want) { // no_embed_class: the loader added zero rows for the prefix tokens
			got = got[len(got)-len(want):]
		}
		expectClose(t, fixture+" pos_embed", got, want)
		tr, err := m.Forward(g.get(t, key+"input.0"), vit.Options{})
		if err != nil {
			t.Fatal(err)
		}
		expectClose(t, fixture+" logits", tr.Logits, g.get(t, key+"logits.0").Data)
	}
}
