package engine

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
	"time"

	"vitlens/app/session"
	"vitlens/public"
	"vitlens/vit/lens"
	"vitlens/vit/memory"
)

// The page's on-demand tools run in the engine: each request and its answer
// survive the round trip, and the answer is bit for bit what the same
// session function gives on a model with its weights.

// analyzed is the demo loaded in e and analysed on picture(), with the
// page's weightless model.
func analyzed(t *testing.T, e *Engine) (loaded *Response, r *Result) {
	t.Helper()
	loaded = roundTrip(t, demo(t, e))
	req := roundTrip(t, &Request{ID: 2, Kind: KindAnalyze, Model: loaded.Model, Image: picture(), Preset: loaded.Loaded.Preset,
		Settings: session.Settings{Target: -1}})
	resp := roundTrip(t, e.Handle(req, nil))
	if err := resp.Error(); err != nil {
		t.Fatal(err)
	}
	return loaded, resp.Result
}

// The memories the page lists: it asks for the value classes it lacks
// (KindMemories), and then lists what the model with weights lists.
func TestMemoriesRoundTrip(t *testing.T) {
	e := &Engine{Demo: public.Files}
	loaded, r := analyzed(t, e)
	page, full := loaded.Loaded, fullDemo(t)
	c := page.Model.Config
	blocks := make([]int, c.Depth)
	for b := range blocks {
		blocks[b] = b
	}
	for _, pos := range []int{0, 7} {
		keys, err := page.MissingClasses(r.BaseMemories, blocks, pos)
		if err != nil {
			t.Fatal(err)
		}
		if pos == 0 && len(keys) != 2*c.Depth*memory.TopK {
			t.Fatalf("%d memories missing on a fresh page model, want %d", len(keys), 2*c.Depth*memory.TopK)
		}
		req := roundTrip(t, &Request{ID: 3, Kind: KindMemories, Model: loaded.Model, Memories: keys})
		resp := roundTrip(t, e.Handle(req, nil))
		if err := resp.Error(); err != nil {
			t.Fatal(err)
		}
		want, err := full.ValueClasses(keys)
		if err != nil || !reflect.DeepEqual(resp.Classes, want) {
			t.Fatalf("token %d: value classes %v, want %v (%v)", pos, resp.Classes, want, err)
		}
		page.SetValueClasses(keys, resp.Classes)
		if left, _ := page.MissingClasses(r.BaseMemories, blocks, pos); len(left) != 0 {
			t.Fatalf("token %d: still missing %v", pos, left)
		}
		for _, b := range blocks {
			for _, l := range []memory.Layer{memory.MLP, memory.Attn} {
				got, err1 := page.Memories(r.BaseMemories, b, l, pos)
				want, err2 := full.Memories(r.BaseMemories, b, l, pos)
				if err1 != nil || err2 != nil || !reflect.DeepEqual(got, want) {
					t.Fatalf("block %d %s token %d: page lists %v, the full model %v (%v, %v)", b, l, pos, got, want, err1, err2)
				}
			}
		}
	}
	for _, bad := range []session.MemoryKey{{Block: c.Depth, Layer: memory.MLP}, {Layer: memory.Attn, Index: c.Dim},
		{Layer: memory.MLP, Index: -1}, {Layer: "conv"}} {
		resp := e.Handle(&Request{ID: 4, Kind: KindMemories, Model: loaded.Model, Memories: []session.MemoryKey{bad}}, nil)
		if resp.Error() == nil || resp.Classes != nil {
			t.Errorf("memory %+v: answered %v", bad, resp.Classes)
		}
	}
}

// A patching map and a cell of it, as session.Patch and PatchMap.Cell give
// them; the cells report progress, a cancel stops the map at the next
// report, and a cell of a map that is gone is an error.
func TestPatchRoundTrip(t *testing.T) {
	e := &Engine{Demo: public.Files}
	loaded, r := analyzed(t, e)
	full := fullDemo(t)
	samples, err := session.Samples(public.Files)
	if err != nil {
		t.Fatal(err)
	}
	corrupt := PictureOf(samples[1].Name, samples[1].Src)
	opt := session.PatchOptions{Grid: session.GridResidPre, Metric: "logit_diff", A: -1, B: -1}
	req := roundTrip(t, &Request{ID: 5, Kind: KindPatch, Model: loaded.Model, Input: r.Input, Image: corrupt,
		Preset: loaded.Loaded.Preset, Patch: opt})
	var seen []Progress
	resp := roundTrip(t, e.Handle(req, func(p Progress) { seen = append(seen, p) }))
	if err := resp.Error(); err != nil {
		t.Fatal(err)
	}
	img, _ := corrupt.Image()
	in, err := full.Prepare(img)
	if err != nil {
		t.Fatal(err)
	}
	want, err := session.Patch(full.Model, r.Input.Pixels, in.Pixels, opt, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := resp.Patch
	if got == nil || got.Grid != want.Grid || got.Metric != want.Metric || got.CleanClass != want.CleanClass ||
		got.CorruptClass != want.CorruptClass || got.Clean != want.Clean || got.Corrupt != want.Corrupt ||
		got.CleanRank != want.CleanRank || got.CorruptRank != want.CorruptRank || !reflect.DeepEqual(got.Effect, want.Effect) {
		t.Fatalf("patching map %+v, want %+v", got, want)
	}
	cells := full.Model.Config.Depth * full.Model.Config.NumTokens()
	if len(seen) == 0 || seen[len(seen)-1] != (Progress{ID: 5, Step: cells, Steps: cells}) {
		t.Fatalf("progress %v: want it to end at %d of %d cells", seen, cells, cells)
	}

	b, tok := full.Model.Config.Depth-1, 0
	cellReq := roundTrip(t, &Request{ID: 6, Kind: KindPatchCell, Model: loaded.Model, PatchID: 5, Cell: [2]int{b, tok}})
	cell := roundTrip(t, e.Handle(cellReq, nil))
	wantCell, err := want.Cell(b, tok)
	if err != nil || cell.Error() != nil || cell.PatchCell == nil || *cell.PatchCell != wantCell {
		t.Fatalf("cell (%d, %d): %+v (%v), want %+v (%v)", b, tok, cell.PatchCell, cell.Error(), wantCell, err)
	}
	if resp := e.Handle(&Request{ID: 7, Kind: KindPatchCell, Model: loaded.Model, PatchID: 5, Cell: [2]int{b, 999}}, nil); resp.Error() == nil {
		t.Error("a cell outside the map was answered")
	}
	if resp := e.Handle(&Request{ID: 8, Kind: KindPatchCell, Model: loaded.Model, PatchID: 4, Cell: [2]int{b, tok}}, nil); resp.Error() == nil {
		t.Error("a cell of a map that was never made was answered")
	}

	// Cancelled at its second report, the map stops there. Every cell
	// reports here, or a fast machine finishes the map within one turn.
	defer func(every time.Duration) { patchYieldEvery = every }(patchYieldEvery)
	patchYieldEvery = 0
	reports := 0
	e.Yield = func() {
		if reports++; reports == 2 {
			e.Cancel(9)
		}
	}
	req.ID = 9
	resp = e.Handle(req, nil)
	if !resp.Canceled || !errors.Is(resp.Error(), ErrCanceled) || resp.Patch != nil || reports != 2 {
		t.Fatalf("cancelled map answered %+v after %d reports", resp, reports)
	}
	// The cancelled map did not replace the last one.
	if cell := e.Handle(&Request{ID: 10, Kind: KindPatchCell, Model: loaded.Model, PatchID: 5, Cell: [2]int{b, tok}}, nil); cell.Error() != nil {
		t.Fatalf("the last map is gone after a cancelled one: %v", cell.Error())
	}
	// A cancel sent before the request starts stops it at once.
	e.Yield = nil
	e.Cancel(11)
	req.ID = 11
	if resp := e.Handle(req, nil); !resp.Canceled {
		t.Fatalf("a map cancelled before it started answered %+v", resp)
	}
	if resp := e.Handle(&Request{ID: 12, Kind: KindPatch, Model: loaded.Model, Input: r.Input, Preset: loaded.Loaded.Preset, Patch: opt}, nil); resp.Error() == nil {
		t.Error("a map without a corrupted image was answered")
	}
}

// The activations export is session.ActivationsFile's bytes.
func TestActivationsRoundTrip(t *testing.T) {
	e := &Engine{Demo: public.Files}
	loaded, r := analyzed(t, e)
	req := roundTrip(t, &Request{ID: 3, Kind: KindActivations, Model: loaded.Model, Input: r.Input, Name: "gradient.png"})
	resp := roundTrip(t, e.Handle(req, nil))
	if err := resp.Error(); err != nil {
		t.Fatal(err)
	}
	want, err := session.ActivationsFile(fullDemo(t).Model, r.Input.Pixels, "gradient.png")
	if err != nil || !bytes.Equal(resp.Data, want) {
		t.Fatalf("activations file of %d bytes, want %d (%v)", len(resp.Data), len(want), err)
	}
	if resp := e.Handle(&Request{ID: 4, Kind: KindActivations, Model: loaded.Model}, nil); resp.Error() == nil {
		t.Error("activations without an input were answered")
	}
}

// A tuned lens is read once (KindLens) and named by its number in the
// analyses, which then read what session.Analyze reads through it; a file
// that does not fit the model is refused naming it.
func TestLensRoundTrip(t *testing.T) {
	e := &Engine{Demo: public.Files}
	loaded, _ := analyzed(t, e)
	full := fullDemo(t)
	c := full.Model.Config
	tl := lens.NewTranslators(c.Dim, c.Depth)
	for _, s := range lens.TranslatorSites {
		for b := range c.Depth {
			tr := tl.At(s, b)
			for i := range tr.B {
				tr.B[i] = float32(i%5) - 2
			}
		}
	}
	file, err := tl.Encode()
	if err != nil {
		t.Fatal(err)
	}
	analysis := &Request{ID: 3, Kind: KindAnalyze, Model: loaded.Model, Image: picture(), Preset: loaded.Loaded.Preset,
		Settings: session.Settings{Target: 2}, LensID: 1}
	if resp := e.Handle(analysis, nil); resp.Error() == nil {
		t.Fatal("an analysis through a lens never read succeeded")
	}
	req := roundTrip(t, &Request{ID: 4, Kind: KindLens, Model: loaded.Model, LensID: 1, Name: "translators.safetensors", Data: file})
	if resp := roundTrip(t, e.Handle(req, nil)); resp.Error() != nil {
		t.Fatal(resp.Error())
	}
	analysis.ID = 5
	resp := roundTrip(t, e.Handle(analysis, nil))
	if err := resp.Error(); err != nil {
		t.Fatal(err)
	}
	img, _ := picture().Image()
	in, err := full.Prepare(img)
	if err != nil {
		t.Fatal(err)
	}
	want, err := session.Analyze(lens.NewCPU(full.Model), nil, full, img, in, session.Settings{Target: 2, Lens: tl}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.Result.Tuned; got == nil || !reflect.DeepEqual(got.Readouts, want.Tuned.Readouts) {
		t.Fatal("the tuned run differs from session.Analyze's")
	}
	bad := &Request{ID: 6, Kind: KindLens, Model: loaded.Model, LensID: 2, Name: "other.safetensors", Data: []byte("no")}
	if resp := e.Handle(bad, nil); resp.Error() == nil || !bytes.Contains([]byte(resp.Err), []byte("other.safetensors")) {
		t.Fatalf("a bad lens file: %q, want an error naming it", resp.Err)
	}
}
