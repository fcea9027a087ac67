package session

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"vitlens/public"
	"vitlens/vit"
	"vitlens/vit/lens"
	"vitlens/vit/memory"
)

func refFile(t *testing.T, rel string) []byte {
	t.Helper()
	_, self, _, _ := runtime.Caller(0)
	data, err := os.ReadFile(filepath.Join(filepath.Dir(self), "..", "..", "testdata", "reference", rel))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// tiny loads the 2-block reference fixture (4×4 patches + [CLS], 7 classes).
func tiny(t *testing.T) *Model {
	t.Helper()
	m, err := LoadModel("timm.safetensors", refFile(t, "tiny/timm.safetensors"), LoadOptions{Heads: 2})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func testImage(t *testing.T) *Image {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, 40, 30))
	for y := 0; y < 30; y++ {
		for x := 0; x < 40; x++ {
			img.Set(x, y, color.NRGBA{uint8(6 * x), uint8(8 * y), uint8(3 * (x + y)), 255})
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	out, err := DecodeImage("gradient.png", b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func analyze(t *testing.T, m *Model, s Settings) *Analysis {
	t.Helper()
	img := testImage(t)
	in, err := m.Prepare(img)
	if err != nil {
		t.Fatal(err)
	}
	a, err := Analyze(lens.NewCPU(m.Model), nil, m, img, in, s, nil)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestLoadModelErrorsNameTheFile(t *testing.T) {
	_, err := LoadModel("broken.safetensors", []byte("not a checkpoint at all"), LoadOptions{})
	if err == nil || !strings.Contains(err.Error(), "broken.safetensors") {
		t.Fatalf("want an error naming the file, got %v", err)
	}
	// Without a head count the tiny fixture (dim 16) cannot be loaded.
	if _, err := LoadModel("timm.safetensors", refFile(t, "tiny/timm.safetensors"), LoadOptions{}); err == nil {
		t.Fatal("tiny fixture loaded without heads")
	}
}

func TestClassesAndPreset(t *testing.T) {
	m := tiny(t)
	if err := m.SetClasses("names.txt", []byte("a\nb\n")); err == nil {
		t.Fatal("2 names accepted for 7 classes")
	}
	if err := m.SetClasses("names.json", []byte(`["a","b","c","d","e","f","g"]`)); err != nil {
		t.Fatal(err)
	}
	if m.ClassName(6) != "g" || m.ClassName(9) != "class 9" {
		t.Fatalf("names: %q %q", m.ClassName(6), m.ClassName(9))
	}
	if err := m.UseImageNetClasses(); err == nil {
		t.Fatal("ImageNet names accepted for 7 classes")
	}
	if err := m.SetPreset("deit"); err != nil || m.Preset.Name != "deit" {
		t.Fatalf("preset: %v %s", err, m.Preset.Name)
	}
	if err := m.SetPreset("nope"); err == nil {
		t.Fatal("unknown preset accepted")
	}
	if len(m.Facts()) < 6 {
		t.Fatal("too few facts")
	}
}

// A checkpoint that does not say how its images were preprocessed shows the
// assumed preset as a warning among the model's facts; a chosen one does not.
func TestAssumedPresetIsShown(t *testing.T) {
	m := tiny(t)
	fact := func() string {
		for _, f := range m.Facts() {
			if f[0] == "preset" {
				return f[1]
			}
		}
		t.Fatal("no preset fact")
		return ""
	}
	if got := fact(); !strings.HasPrefix(got, "preset assumed: google; pick the right one under Preprocessing") {
		t.Fatalf("preset fact %q", got)
	}
	if err := m.SetPreset("deit"); err != nil {
		t.Fatal(err)
	}
	if got := fact(); got != "deit (given: chosen in the app)" {
		t.Fatalf("preset fact after choosing %q", got)
	}
}

// The session's readouts are the CPU backend's, untouched.
func TestAnalyzeMatchesBackend(t *testing.T) {
	m := tiny(t)
	a := analyze(t, m, Settings{Target: -1})
	if a.After != nil {
		t.Fatal("After without intervention")
	}
	direct, err := lens.NewCPU(m.Model).Analyze([]*vit.Tensor{a.Input.Pixels}, Request(-1, vit.EditNone, nil))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range vit.AllSites() {
		for b := 0; b < m.Model.Config.Depth; b++ {
			if !slices.Equal(a.Base.At(s, b).Rank, direct[0].At(s, b).Rank) {
				t.Fatalf("%s block %d: ranks differ", s, b)
			}
		}
	}
	if a.Base.Target != a.Predicted() {
		t.Fatalf("target %d, predicted %d", a.Base.Target, a.Predicted())
	}
	cls, img := Curve(a.Base, m.Model.Config, vit.SiteHS)
	if len(cls) != 2 || len(img) != 2 {
		t.Fatalf("curve lengths %d %d", len(cls), len(img))
	}
	// At the last block the [CLS] readout is the model's own output: the
	// predicted class is top-1 there.
	if cls[1] != 1 {
		t.Fatalf("[CLS] identifiability at the last block %g, want 1", cls[1])
	}
}

func TestInterventions(t *testing.T) {
	m := tiny(t)
	s := Settings{Target: 4, Edit: vit.EditNoCLS}.Toggle(5).Toggle(3).Toggle(7).Toggle(3)
	if !slices.Equal(s.Drop, []int{5, 7}) {
		t.Fatalf("drop %v", s.Drop)
	}
	a := analyze(t, m, s)
	if a.After == nil || a.After.Target != 4 || a.Base.Target != 4 {
		t.Fatal("the intervention must read out the same target")
	}
	if len(a.After.Tokens) != 15 || Position(a.After, 5) != -1 || Position(a.After, 6) != 5 {
		t.Fatalf("tokens after dropping 5 and 7: %v", a.After.Tokens)
	}
	if _, err := Keep(m.Model.Config, []int{0}); err == nil {
		t.Fatal("dropping [CLS] accepted")
	}
	all := make([]int, m.Model.Config.NumTokens())
	for i := range all {
		all[i] = i
	}
	if _, err := Keep(m.Model.Config, all); err == nil {
		t.Fatal("dropping everything accepted")
	}
}

// The memories summary the engine sends instead of the coefficients lists,
// for every run, block, layer and token, what the full trace's
// coefficients give: memory.TokenTop's memories and their coefficients.
func TestMemoryTopIsTrace(t *testing.T) {
	m := tiny(t)
	a := analyze(t, m, Settings{Target: -1, Drop: []int{2, 5}})
	c := m.Model.Config
	for name, run := range map[string]struct {
		r   *lens.Result
		top *MemoryTop
	}{"base": {a.Base, a.BaseMemories}, "after": {a.After, a.AfterMemories}} {
		n := len(run.r.Tokens)
		if run.top == nil || run.top.Depth != c.Depth || run.top.Tokens != n {
			t.Fatalf("%s: summary %+v for %d blocks of %d tokens", name, run.top, c.Depth, n)
		}
		for b := range c.Depth {
			for _, l := range []memory.Layer{memory.MLP, memory.Attn} {
				coef, err := memory.Coefficients(run.r.Trace, b, l)
				if err != nil {
					t.Fatal(err)
				}
				want := memory.TokenTop(coef)
				width := coef.Shape[1]
				for pos := range n {
					idx, got, err := run.top.token(b, l, pos)
					if err != nil {
						t.Fatal(err)
					}
					for i, j := range want[pos*memory.TopK : (pos+1)*memory.TopK] {
						if idx[i] != j || got[i] != coef.Data[pos*width+int(j)] {
							t.Fatalf("%s block %d %s token %d: memory %d coefficient %g, the trace says %d, %g",
								name, b, l, pos, idx[i], got[i], j, coef.Data[pos*width+int(j)])
						}
					}
				}
			}
		}
	}
	if a.CurrentMemories() != a.AfterMemories {
		t.Error("the current run's memories are not the intervention's")
	}
	for _, bad := range []struct {
		b   int
		l   memory.Layer
		pos int
	}{{c.Depth, memory.MLP, 0}, {-1, memory.Attn, 0}, {0, "conv", 0}, {0, memory.MLP, len(a.After.Tokens)}, {0, memory.MLP, -1}} {
		if _, err := m.Memories(a.AfterMemories, bad.b, bad.l, bad.pos); err == nil {
			t.Errorf("memories of block %d %s token %d: no error", bad.b, bad.l, bad.pos)
		}
	}
	if _, err := m.Memories(nil, 0, memory.MLP, 0); err == nil {
		t.Error("memories of an analysis without coefficients: no error")
	}
}

func TestMemoriesAndAttention(t *testing.T) {
	m := tiny(t)
	a := analyze(t, m, Settings{Target: -1})
	for _, l := range []memory.Layer{memory.MLP, memory.Attn} {
		blk := memory.NewBlock(m.Model, 1, l)
		values := memory.ValueClasses(m.Model, 1, l) // E·W_out whole: the twin of the per-column valueClasses
		mems, err := m.Memories(a.BaseMemories, 1, l, 3)
		if err != nil {
			t.Fatal(err)
		}
		if len(mems) != memory.TopK {
			t.Fatalf("%s: %d memories", l, len(mems))
		}
		for i, mem := range mems {
			if i > 0 && mem.Coef > mems[i-1].Coef {
				t.Fatalf("%s: memories not sorted by coefficient", l)
			}
			if mem.Classes[0] != blk.MemoryClass[mem.Index] {
				t.Fatalf("%s memory %d: top class %d, memory.NewBlock says %d", l, mem.Index, mem.Classes[0], blk.MemoryClass[mem.Index])
			}
			if want := values[mem.Index].Classes[:MemoryClasses]; !slices.Equal(mem.Classes, want) {
				t.Fatalf("%s memory %d: classes %v, memory.ValueClasses says %v", l, mem.Index, mem.Classes, want)
			}
			if (l == memory.MLP) != (mem.Head < 0) {
				t.Fatalf("%s: head %d", l, mem.Head)
			}
		}
	}
	c := m.Model.Config
	rows, err := AttentionOf(a.Base, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := rows.Check(); err != nil || rows.Depth != c.Depth || rows.Heads != c.Heads || !slices.Equal(rows.Keys, a.Base.Tokens) {
		t.Fatalf("rows of token 2: %v, depth %d, %d heads, keys %v", err, rows.Depth, rows.Heads, rows.Keys)
	}
	n := len(a.Base.Tokens)
	for b := range c.Depth {
		p := a.Base.Trace.AttnProbs[b].Data
		for h, w := range rows.Block(b) {
			// Token 2 sits at position 2 of the whole sequence.
			if !slices.Equal(w, p[(h*n+2)*n:(h*n+3)*n]) {
				t.Fatalf("block %d head %d: the rows are not the maps' row of token 2", b, h)
			}
			var sum float64
			for _, v := range w {
				sum += float64(v)
			}
			if sum < 0.999 || sum > 1.001 {
				t.Fatalf("block %d head %d: attention sums to %g", b, h, sum)
			}
		}
	}
	// A dropped token has no rows; a token's position moves with the drop.
	d := analyze(t, m, Settings{Target: -1, Drop: []int{2}})
	if _, err := AttentionOf(d.After, 2); err == nil {
		t.Error("the rows of a dropped token: no error")
	}
	r3, err := AttentionOf(d.After, 3)
	if err != nil {
		t.Fatal(err)
	}
	if p, nd := d.After.Trace.AttnProbs[0].Data, len(d.After.Tokens); !slices.Equal(r3.Block(0)[0], p[2*nd:3*nd]) {
		t.Error("token 3 after dropping token 2: not the maps' row at position 2")
	}
	if bad := (&AttentionRows{Keys: []int{0, 1}, Depth: 1, Heads: 1, W: []float32{1}}); bad.Check() == nil {
		t.Error("rows shorter than depth × heads × keys pass Check")
	}
}

func TestExports(t *testing.T) {
	m := tiny(t)
	a := analyze(t, m, Settings{Target: -1, Edit: vit.EditSelfOnly})
	c := m.Model.Config
	tables := map[string][]byte{"readouts": a.ReadoutsCSV(), "predictions": a.PredictionsCSV(), "curve": a.CurveCSV(vit.SiteHS)}
	var err error
	if tables["memories"], err = a.MemoriesCSV(1); err != nil {
		t.Fatal(err)
	}
	rows, err := AttentionOf(a.Current(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if tables["attention"], err = a.AttentionCSV(rows); err != nil {
		t.Fatal(err)
	}
	want := map[string]int{
		"readouts":    2 * 4 * c.Depth * c.NumTokens(),
		"predictions": 2 * 5,
		"curve":       2 * c.Depth,
		"memories":    c.Depth * 2 * memory.TopK,
		"attention":   c.Depth * c.Heads * c.NumTokens(),
	}
	for name, data := range tables {
		rows, err := csv.NewReader(bytes.NewReader(data)).ReadAll()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(rows)-1 != want[name] {
			t.Errorf("%s: %d rows, want %d", name, len(rows)-1, want[name])
		}
	}
	var s Summary
	if err := json.Unmarshal(a.SummaryJSON(), &s); err != nil {
		t.Fatal(err)
	}
	if s.After == nil || len(s.Base.Ranks["mlp"]) != c.Depth || len(s.Base.Ranks["mlp"][0]) != c.NumTokens() {
		t.Fatalf("summary shape: %+v", s.Base.Ranks)
	}
}

func TestPreviewIsWhatTheModelSees(t *testing.T) {
	m := tiny(t)
	img := testImage(t)
	in, err := m.Prepare(img)
	if err != nil {
		t.Fatal(err)
	}
	if in.Preview.Bounds().Dx() != 32 {
		t.Fatalf("preview is %v", in.Preview.Bounds())
	}
	// google preset: x = (p/255 − 0.5)/0.5.
	want := uint8((in.Pixels.Data[0]*0.5+0.5)*255 + 0.5)
	if got := in.Preview.Pix[0]; got != want {
		t.Fatalf("preview red %d, want %d", got, want)
	}
}

func TestDemoAndSamples(t *testing.T) {
	m, err := LoadDemo(public.Files)
	if err != nil {
		t.Fatal(err)
	}
	samples, err := Samples(public.Files)
	if err != nil || len(samples) == 0 {
		t.Fatalf("samples: %d, %v", len(samples), err)
	}
	// The index the browser reads lists every sample image of the folder.
	entries, err := fs.ReadDir(public.Files, public.SamplesDir)
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".png") {
			files = append(files, e.Name())
		}
	}
	var names []string
	for _, s := range samples {
		names = append(names, s.Name)
	}
	if !slices.Equal(names, files) {
		t.Fatalf("%s lists %v; the folder holds %v", public.SamplesIndex, names, files)
	}
	a, err := Analyze(lens.NewCPU(m.Model), nil, m, samples[0], mustPrepare(t, m, samples[0]), Settings{Target: -1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Model.Classes) != 10 {
		t.Fatalf("demo classes: %v", a.Model.Classes)
	}
}

func mustPrepare(t *testing.T, m *Model, img *Image) *Input {
	t.Helper()
	in, err := m.Prepare(img)
	if err != nil {
		t.Fatal(err)
	}
	return in
}

// With a tuned lens the analysis holds both lenses' runs: zero translators
// read exactly as the plain lens, non-zero ones change hs and hs_mid only,
// and ThroughLens swaps the runs the views read.
func TestTunedLens(t *testing.T) {
	m := tiny(t)
	c := m.Model.Config
	zero := lens.NewTranslators(c.Dim, c.Depth)
	a := analyze(t, m, Settings{Target: 2, Edit: vit.EditNoCLS, Lens: zero})
	if a.Tuned == nil || a.TunedAfter == nil {
		t.Fatal("no tuned runs")
	}
	for i, r := range a.Base.Readouts {
		// The plain run takes the folded projection, the tuned one the
		// direct: equal up to rounding (vit/lens tests the exact equality).
		for tok, l := range r.TargetLogit {
			if d := math.Abs(float64(l - a.Tuned.Readouts[i].TargetLogit[tok])); d > 1e-4*(1+math.Abs(float64(l))) {
				t.Fatalf("%v block %d token %d: zero translators read %g, plain %g", r.Site, r.Block, tok, a.Tuned.Readouts[i].TargetLogit[tok], l)
			}
		}
	}
	moved := lens.NewTranslators(c.Dim, c.Depth)
	for _, s := range lens.TranslatorSites {
		for b := range c.Depth {
			tr := moved.At(s, b)
			for i := range tr.B {
				tr.B[i] = float32(i%5) - 2
			}
		}
	}
	a = analyze(t, m, Settings{Target: 2, Lens: moved})
	changed := map[vit.Site]bool{}
	for i, r := range a.Base.Readouts {
		changed[r.Site] = changed[r.Site] || !slices.Equal(r.TargetLogit, a.Tuned.Readouts[i].TargetLogit)
	}
	if !changed[vit.SiteHS] || !changed[vit.SiteHSMid] || changed[vit.SiteAttn] || changed[vit.SiteMLP] {
		t.Fatalf("sites read differently through the translators: %v (want hs and hs_mid only)", changed)
	}
	if v := a.ThroughLens(true); v.Base != a.Tuned || v.Base.Trace == nil || a.ThroughLens(false) != a {
		t.Fatal("ThroughLens does not swap the runs")
	}
}

// A CLIP tower with a head file ("Load class embeddings"): the classes and
// their names are the head's, the facts say where the activation and the
// names came from; a head of the wrong width is refused naming the file.
func TestHeadFileAndTokenKinds(t *testing.T) {
	opt := LoadOptions{Heads: 2, ConfigJSON: refFile(t, "clip/config.json"), HeadName: "head.safetensors", HeadData: refFile(t, "clip/head.safetensors")}
	m, err := LoadModel("timm.safetensors", refFile(t, "clip/timm.safetensors"), opt)
	if err != nil {
		t.Fatal(err)
	}
	if c := m.Model.Config.Classes; c != 5 || m.ClassName(1) != "dog" {
		t.Fatalf("%d classes, class 1 %q: want the head file's 5, dog", c, m.ClassName(1))
	}
	facts := fmt.Sprint(m.Facts())
	for _, want := range []string{`head.safetensors metadata "classes"`, `quick_gelu (config.json: act "quick_gelu")`} {
		if !strings.Contains(facts, want) {
			t.Errorf("facts lack %q: %s", want, facts)
		}
	}
	a := analyze(t, m, Settings{Target: -1})
	if a.Current().Target < 0 || a.Current().Target >= 5 {
		t.Errorf("target %d of 5 classes", a.Current().Target)
	}
	opt.HeadData = refFile(t, "clip/timm.safetensors") // not a head file
	if _, err := LoadModel("timm.safetensors", refFile(t, "clip/timm.safetensors"), opt); err == nil || !strings.Contains(err.Error(), "head.safetensors") {
		t.Errorf("a wrong head file: %v", err)
	}
	for fixture, want := range map[string]string{"ls_reg/timm.safetensors": "+ [CLS] + 2 registers", "deit_dist/timm.safetensors": "+ [CLS] + distillation token"} {
		m, err := LoadModel(fixture, refFile(t, fixture), LoadOptions{Heads: 2})
		if err != nil {
			t.Fatal(err)
		}
		if facts := fmt.Sprint(m.Facts()); !strings.Contains(facts, want) {
			t.Errorf("%s: facts lack %q: %s", fixture, want, facts)
		}
		if got := TokenLabel(m.Model.Config, 1); got == "patch (0, 0)" {
			t.Errorf("%s: token 1 labelled %q", fixture, got)
		}
	}
}
