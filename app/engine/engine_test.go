package engine

import (
	"bytes"
	"encoding/binary"
	"errors"
	"image"
	"image/color"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"testing"

	"vitlens/app/session"
	"vitlens/public"
	"vitlens/vit"
	"vitlens/vit/dla"
	"vitlens/vit/explain"
	"vitlens/vit/lens"
	"vitlens/vit/memory"
)

// roundTrip encodes v, decodes it into a new value of its type, and checks
// that the copy encodes to the same bytes.
func roundTrip[T any](t *testing.T, v *T) *T {
	t.Helper()
	data, err := Encode(v)
	if err != nil {
		t.Fatal(err)
	}
	out := new(T)
	if err := Decode(data, out); err != nil {
		t.Fatal(err)
	}
	again, err := Encode(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(data, again) {
		t.Fatalf("%T: the decoded copy encodes differently (%d against %d bytes)", v, len(again), len(data))
	}
	return out
}

func picture() *Picture {
	img := image.NewNRGBA(image.Rect(0, 0, 40, 30))
	for y := range 30 {
		for x := range 40 {
			img.Set(x, y, color.NRGBA{uint8(6 * x), uint8(8 * y), uint8(3 * (x + y)), 255})
		}
	}
	return PictureOf("gradient.png", img)
}

func demo(t *testing.T, e *Engine) *Response {
	t.Helper()
	resp := e.Handle(&Request{ID: 1, Kind: KindDemo}, nil)
	if err := resp.Error(); err != nil {
		t.Fatal(err)
	}
	return resp
}

// The page gets a loaded model without its weights: what it draws (config,
// classes, preset, facts) in a message of a few kB, the weights staying in
// the engine. The codec still carries a whole model bit for bit (packed
// weights travel as PyTorch-layout matrices).
func TestModelRoundTrip(t *testing.T) {
	e := &Engine{Demo: public.Files}
	resp := demo(t, e)
	data, err := Encode(resp)
	if err != nil {
		t.Fatal(err)
	}
	got := roundTrip(t, resp)
	want := fullDemo(t)
	if got.Model != resp.Model || got.Loaded.Name != want.Name || !reflect.DeepEqual(got.Loaded.Classes, want.Classes) ||
		got.Loaded.Preset != want.Preset || got.Loaded.Model.Config != want.Model.Config ||
		!reflect.DeepEqual(got.Loaded.Info, want.Info) || !reflect.DeepEqual(got.Loaded.Facts(), want.Facts()) ||
		got.Loaded.NumParams() != want.Model.NumParams() || got.Loaded.Bytes != want.Bytes {
		t.Fatalf("model metadata differs after the round trip")
	}
	if got.Loaded.HasWeights() || got.Loaded.Model.NumParams() != 0 || len(data) > 64<<10 {
		t.Fatalf("the page's model holds weights: %d parameters, a %d-byte message", got.Loaded.Model.NumParams(), len(data))
	}
	if _, err := got.Loaded.ValueClasses([]session.MemoryKey{{Block: 0, Layer: memory.MLP}}); err == nil {
		t.Fatal("a weightless model computed value classes")
	}
	t.Logf("load response: %d bytes for a %d-parameter model", len(data), want.Model.NumParams())

	whole := roundTrip(t, want)
	img, err := picture().Image()
	if err != nil {
		t.Fatal(err)
	}
	in, err := want.Prepare(img)
	if err != nil {
		t.Fatal(err)
	}
	a, errA := want.Model.Forward(in.Pixels, vit.Options{})
	b, errB := whole.Model.Forward(in.Pixels, vit.Options{})
	if errA != nil || errB != nil || !reflect.DeepEqual(a.Logits, b.Logits) {
		t.Fatalf("forward after the round trip: %v %v, logits %v against %v", errA, errB, b.Logits, a.Logits)
	}
}

// fullDemo is the demo model loaded here, with its weights: the reference
// the engine's answers are checked against.
func fullDemo(t *testing.T) *session.Model {
	t.Helper()
	m, err := session.LoadDemo(public.Files)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// The engine's analysis equals session.Analyze on the same model and
// input, and survives the round trip, traces and derivations included.
func TestAnalyzeRoundTrip(t *testing.T) {
	var stages []string
	e := &Engine{Demo: public.Files, Mark: func(stage string) { stages = append(stages, stage) }}
	loaded := demo(t, e)
	s := session.Settings{Target: 3, Drop: []int{2, 5}}
	resp := e.Handle(&Request{ID: 2, Kind: KindAnalyze, Model: loaded.Model, Image: picture(), Preset: loaded.Loaded.Preset,
		Settings: s, Explain: true, DLA: true}, nil)
	if err := resp.Error(); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(stages, []string{"lens", "dla", "explain"}) {
		t.Errorf("the analysis marked stages %q, want lens, dla, explain", stages)
	}
	m := fullDemo(t)
	img, _ := picture().Image()
	in, err := m.Prepare(img)
	if err != nil {
		t.Fatal(err)
	}
	want, err := session.Analyze(lens.NewCPU(m.Model), nil, m, img, in, s, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := roundTrip(t, resp)
	r := got.Result
	if !reflect.DeepEqual(r.Input.Pixels, in.Pixels) || !reflect.DeepEqual(r.Input.Preview, in.Preview) {
		t.Fatal("the prepared input differs")
	}
	for name, pair := range map[string][2]*lens.Result{"base": {r.Base, want.Base}, "after": {r.After, want.After}} {
		g, w := pair[0], pair[1]
		if g == nil || !reflect.DeepEqual(g.Logits, w.Logits) || !reflect.DeepEqual(g.Readouts, w.Readouts) ||
			!reflect.DeepEqual(g.Tokens, w.Tokens) {
			t.Errorf("%s run differs from session.Analyze", name)
		}
		// The coefficients and the attention maps stay in the engine: the
		// page gets the coefficients' summary and a token's rows.
		if g != nil && (g.Trace.FC1 != nil || g.Trace.Heads != nil || g.Trace.AttnProbs != nil) {
			t.Errorf("%s run: the memory coefficients or the attention maps went to the page", name)
		}
	}
	// Token 0's rows come with the answer; token 5's (dropped from After)
	// and token 3's on request, from the maps the engine kept.
	for _, token := range []int{0, 5, 3} {
		rows := r.Attention
		if token != 0 {
			a := roundTrip(t, e.Handle(&Request{ID: 3, Kind: KindAttention, Of: 2, Token: token}, nil))
			if err := a.Error(); err != nil {
				t.Fatalf("token %d: %v", token, err)
			}
			rows = a.Attention
		}
		if len(rows) != 2 {
			t.Fatalf("token %d: rows of %d runs, want base and after", token, len(rows))
		}
		for i, run := range []*lens.Result{want.Base, want.After} {
			w, err := session.AttentionOf(run, token)
			if slices.Contains(s.Drop, token) && run == want.After {
				if err == nil || rows[i] != nil {
					t.Errorf("token %d, dropped from After: rows %v", token, rows[i])
				}
				continue
			}
			if err != nil || !reflect.DeepEqual(rows[i], w) {
				t.Errorf("token %d, run %d: the rows differ from session.AttentionOf's (%v)", token, i, err)
			}
		}
	}
	if resp := e.Handle(&Request{ID: 4, Kind: KindAttention, Of: 99, Token: 0}, nil); resp.Error() == nil {
		t.Error("the attention of an analysis never made: no error")
	}
	if w := want.BaseMemories; w == nil || !reflect.DeepEqual(r.BaseMemories, w) || !reflect.DeepEqual(r.AfterMemories, want.AfterMemories) {
		t.Error("the runs' top memories differ from session.Analyze's")
	}
	if resp.Result.Base.Trace.FC1 != nil || want.Base.Trace.FC1 == nil {
		t.Error("the engine's answer holds the coefficients, or session.Analyze's trace lacks them")
	}
	if r.DLA == nil || r.DLA.Err != "" || r.DLA.Result == nil || r.DLA.Result.Target != want.Base.Target {
		t.Errorf("DLA: %+v", r.DLA)
	}
	if x := got.Explain; x == nil || x.Err != "" || x.Maps == nil || x.Maps.Target != want.Base.Target ||
		!reflect.DeepEqual(x.Maps, resp.Explain.Maps) {
		t.Errorf("explanation maps: %+v", x)
	}
	// The maps and DLA come from the analysis's own forward (its record,
	// which is not sent to the page), and equal those of a forward of their
	// own.
	if own, err := explain.Map(m.Model, in.Pixels, want.Base.Target, explain.Options{}); err != nil ||
		!reflect.DeepEqual(resp.Explain.Maps, own) {
		t.Errorf("the analysis's maps differ from explain.Map's (%v)", err)
	}
	var rec vit.Activations
	if _, err := m.Model.Forward(in.Pixels, vit.Options{Record: &rec}); err != nil {
		t.Fatal(err)
	}
	if own, err := dla.FromActivations(m.Model, &rec, dla.Options{Target: want.Base.Target}); err != nil ||
		!reflect.DeepEqual(resp.Result.DLA.Result, own) {
		t.Errorf("the analysis's DLA differs from that of a recording forward of its own (%v)", err)
	}
	if resp.Result.Base.Activations != nil || r.Base.Activations != nil {
		t.Error("the analysis's recorded forward went to the page")
	}
	a := r.Analysis(7, loaded.Loaded, img, s)
	if a.Seq != 7 || a.Model != loaded.Loaded || a.Predicted() != want.Predicted() || a.Current() != r.After {
		t.Error("Analysis does not link the result")
	}

	// DeriveNext: the answer comes without DLA and maps, which a
	// KindDerive naming the analysis computes from its recorded forward,
	// once.
	stages = nil
	next := e.Handle(&Request{ID: 5, Kind: KindAnalyze, Model: loaded.Model, Image: picture(), Preset: loaded.Loaded.Preset,
		Settings: s, Explain: true, DLA: true, DeriveNext: true}, nil)
	if err := next.Error(); err != nil || next.Explain != nil || next.Result.DLA != nil {
		t.Fatalf("DeriveNext: %v, maps %v, DLA %v", err, next.Explain, next.Result.DLA)
	}
	derived := roundTrip(t, e.Handle(&Request{ID: 6, Kind: KindDerive, Model: loaded.Model, Of: 5}, nil))
	if err := derived.Error(); err != nil || derived.Explain == nil || derived.Explain.Err != "" ||
		!reflect.DeepEqual(derived.Explain.Maps, resp.Explain.Maps) {
		t.Errorf("the maps asked after the analysis differ from those with it (%v)", err)
	}
	if d := derived.DLA; d == nil || d.Err != "" || !reflect.DeepEqual(d.Result, resp.Result.DLA.Result) {
		t.Errorf("the DLA asked after the analysis differs from that with it: %+v", d)
	}
	if !slices.Equal(stages, []string{"lens", "dla", "explain"}) {
		t.Errorf("the analysis and its derivations marked stages %q, want lens, dla, explain", stages)
	}
	if again := e.Handle(&Request{ID: 7, Kind: KindDerive, Model: loaded.Model, Of: 5}, nil); again.Error() == nil {
		t.Error("the derivations of an analysis asked twice: no error (the record is kept)")
	}
}

// Traces hold nil tensors in their per-block slices, which gob refuses;
// nil and empty slices and maps stay as they were.
func TestCodecShapes(t *testing.T) {
	type inner struct {
		F []float32
		B []byte
		M map[string]string
	}
	type shapes struct {
		Tensors []*vit.Tensor
		Sites   [vit.NumSites][]*vit.Tensor
		Empty   []float32
		Nil     []float32
		Ints    []int32
		NoInts  []int32
		NilInts []int32
		Inner   []inner
		P       *inner
		I       int
		U       uint16
		F64     float64
		S       string
		Bools   []bool
		skipped int
	}
	v := &shapes{Tensors: []*vit.Tensor{nil, {Shape: []int{1, 2}, Data: []float32{1, -2}}, nil}, Empty: []float32{},
		Inner: []inner{{F: []float32{3}, B: []byte{}, M: map[string]string{"b": "2", "a": "1"}}, {}}, I: -5, U: 7, F64: -0.25,
		S: "ü", Bools: []bool{true, false}, Ints: []int32{-1, 0, 1 << 30, -1 << 31}, NoInts: []int32{}, skipped: 3}
	v.Sites[vit.SiteAttn] = []*vit.Tensor{nil}
	got := roundTrip(t, v)
	v.skipped = 0 // unexported fields are not sent
	if !reflect.DeepEqual(got, v) {
		t.Fatalf("got %+v, want %+v", got, v)
	}
}

// A truncated or damaged message is an error, never a panic.
func TestCodecCorrupt(t *testing.T) {
	e := &Engine{Demo: public.Files}
	loaded := demo(t, e)
	resp := e.Handle(&Request{ID: 2, Kind: KindAnalyze, Model: loaded.Model, Image: picture(), Preset: loaded.Loaded.Preset,
		Settings: session.Settings{Target: -1}}, nil)
	resp.Loaded = loaded.Loaded
	data, err := Encode(resp)
	if err != nil {
		t.Fatal(err)
	}
	for n := range len(data) - 1 {
		if n > 4096 && n%997 != 0 {
			continue
		}
		if err := Decode(data[:n], new(Response)); err == nil {
			t.Fatalf("a message cut at %d of %d bytes decoded", n, len(data))
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	metaLen := 4 + int(binary.LittleEndian.Uint32(data))
	for range 300 {
		bad := bytes.Clone(data)
		bad[rng.IntN(min(metaLen, len(bad)))] ^= byte(1 + rng.IntN(255))
		_ = Decode(bad, new(Response)) // must not panic
	}
	if err := Decode(data, new(Response)); err != nil {
		t.Fatal(err)
	}
}

// Progress counts runs and blocks; a cancel stops the analysis at the next
// block, and the engine then serves the next request.
func TestProgressAndCancel(t *testing.T) {
	e := &Engine{Demo: public.Files}
	loaded := demo(t, e)
	depth := loaded.Loaded.Model.Config.Depth
	req := func(id int) *Request {
		return &Request{ID: id, Kind: KindAnalyze, Model: loaded.Model, Image: picture(), Preset: loaded.Loaded.Preset,
			Settings: session.Settings{Target: -1, Edit: vit.EditSelfOnly}}
	}
	var seen []Progress
	resp := e.Handle(req(5), func(p Progress) { seen = append(seen, p) })
	if err := resp.Error(); err != nil {
		t.Fatal(err)
	}
	last := seen[len(seen)-1]
	if seen[0] != (Progress{ID: 5, Step: 1, Steps: 2, Depth: depth}) || last != (Progress{ID: 5, Step: 2, Steps: 2, Block: depth, Depth: depth}) {
		t.Fatalf("progress %v: want it from run 1 block 0 to run 2 block %d", seen, depth)
	}
	for i := 1; i < len(seen); i++ {
		a, b := seen[i-1], seen[i]
		if b.Step < a.Step || (b.Step == a.Step && b.Block != a.Block+1) {
			t.Fatalf("progress goes %v then %v", a, b)
		}
	}

	blocks := 0
	e.Yield = func() {
		if blocks++; blocks == 2 {
			e.Cancel(6)
		}
	}
	seen = nil
	resp = e.Handle(req(6), func(p Progress) { seen = append(seen, p) })
	if !resp.Canceled || !errors.Is(resp.Error(), ErrCanceled) || resp.Result != nil {
		t.Fatalf("cancelled analysis answered %+v", resp)
	}
	if n := len(seen); n != 3 || seen[n-1].Block != 2 {
		t.Fatalf("a cancel at block 2 should stop there: progress %v", seen)
	}
	// A cancel of another request does not touch this one.
	e.Yield = nil
	if err := e.Handle(req(7), nil).Error(); err != nil {
		t.Fatalf("the analysis after a cancel: %v", err)
	}
}

// A checkpoint that does not say its head count is a question for the
// page, which it still recognises after the round trip.
func TestLoadErrors(t *testing.T) {
	_, self, _, _ := runtime.Caller(0)
	data, err := os.ReadFile(filepath.Join(filepath.Dir(self), "..", "..", "testdata", "reference", "tiny", "timm.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	e := &Engine{}
	resp := roundTrip(t, e.Handle(&Request{ID: 1, Kind: KindLoad, Name: "timm.safetensors", Data: data}, nil))
	if _, choices, ok := session.HeadsQuestion(resp.Error()); !ok || !reflect.DeepEqual(choices, resp.HeadChoices) || resp.Loaded != nil {
		t.Fatalf("want a heads question, got %v (%v)", resp.Error(), resp.HeadChoices)
	}
	resp = e.Handle(&Request{ID: 2, Kind: KindLoad, Name: "x.safetensors", Data: []byte("not a checkpoint")}, nil)
	if resp.Error() == nil || !bytes.Contains([]byte(resp.Err), []byte("x.safetensors")) {
		t.Fatalf("want an error naming the file, got %q", resp.Err)
	}
	if err := e.Handle(&Request{ID: 3, Kind: KindAnalyze, Model: 9}, nil).Error(); err == nil {
		t.Fatal("an analysis of an unknown model succeeded")
	}
	if err := e.Handle(&Request{ID: 4, Kind: KindDemo}, nil).Error(); err == nil {
		t.Fatal("a demo without demo files succeeded")
	}
}

// What Preload loads before the page asks is what a request loads: the
// first request for the plain demo takes the preloaded model, the next and
// one with options load their own; likewise the samples.
func TestPreload(t *testing.T) {
	e := &Engine{Demo: public.Files}
	e.Preload()
	early, earlySamples := e.earlyDemo, e.earlySamples
	first := demo(t, e)
	if early == nil || e.models[first.Model].m != early.v || e.earlyDemo != nil {
		t.Fatalf("the first demo request did not take the preloaded model")
	}
	second := demo(t, e)
	if e.models[second.Model].m == early.v || second.Model == first.Model {
		t.Fatal("a second demo request got the preloaded model again")
	}
	pe := &Engine{Demo: public.Files}
	plain := pe.Handle(&Request{ID: 1, Kind: KindDemo}, nil)
	if err := plain.Error(); err != nil {
		t.Fatal(err)
	}
	img, err := picture().Image()
	if err != nil {
		t.Fatal(err)
	}
	in, err := plain.Loaded.Prepare(img)
	if err != nil {
		t.Fatal(err)
	}
	a, errA := pe.models[plain.Model].m.Model.Forward(in.Pixels, vit.Options{})
	b, errB := early.v.Model.Forward(in.Pixels, vit.Options{})
	if errA != nil || errB != nil || !reflect.DeepEqual(a.Logits, b.Logits) || first.Loaded.Name != plain.Loaded.Name {
		t.Fatalf("the preloaded demo differs from a loaded one: %v %v", errA, errB)
	}

	samples := e.Handle(&Request{ID: 3, Kind: KindSamples}, nil)
	again := e.Handle(&Request{ID: 4, Kind: KindSamples}, nil)
	if err := errors.Join(samples.Error(), again.Error()); err != nil {
		t.Fatal(err)
	}
	if earlySamples == nil || e.earlySamples != nil || len(samples.Pictures) != len(earlySamples.v) || len(samples.Pictures) == 0 {
		t.Fatal("the first samples request did not take the preloaded samples")
	}
	if !reflect.DeepEqual(samples.Pictures, again.Pictures) {
		t.Fatal("the preloaded samples differ from decoded ones")
	}

	e = &Engine{Demo: public.Files}
	e.Preload()
	nonStrict := e.Handle(&Request{ID: 1, Kind: KindDemo, Opt: session.LoadOptions{NonStrict: true}}, nil)
	if err := nonStrict.Error(); err != nil {
		t.Fatal(err)
	}
	if e.earlyDemo == nil {
		t.Fatal("a demo request with options took the preloaded model")
	}
	<-e.earlyDemo.done
	<-e.earlySamples.done
	if e.models[nonStrict.Model].m == e.earlyDemo.v || !nonStrict.Loaded.Opt.NonStrict {
		t.Fatal("a demo request with options got the preloaded model")
	}
}
