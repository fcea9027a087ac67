package session

import (
	"fmt"

	"vitlens/vit"
	"vitlens/vit/activations"
	"vitlens/vit/lens"
	"vitlens/vit/patching"
)

// HeadPatching patches every head of every block (attn.hook_z, one head at
// every token) of a corrupted image with the clean image's, measuring the
// logit of the clean image's class: the page's heads × blocks map, each cell
// of which can then be run once more to show the class's rank and logit.
type HeadPatching struct {
	Target int // the class followed: the clean image's prediction
	// Clean and Corrupt are the target's logit and rank unpatched.
	CleanLogit, CorruptLogit float64
	CleanRank, CorruptRank   int
	// Effect[b][h] is the patched logit minus the corrupted one.
	Effect [][]float64

	run     patching.Run
	corrupt *vit.Tensor
	src     patching.Source
	sites   []patching.Site
}

// PatchHeads runs the corrupted image once per head with the clean image's
// attn.hook_z of that head written in.
func PatchHeads(m *vit.Model, clean, corrupt *vit.Tensor) (*HeadPatching, error) {
	c := m.Config
	hooks, err := c.MatchHooks("blocks.*.attn.hook_z")
	if err != nil {
		return nil, err
	}
	sites, err := patching.Sites(c, hooks, patching.PerHead, c.NumTokens())
	if err != nil {
		return nil, err
	}
	r := patching.Run{Model: m, Mode: patching.ModePatch}
	src, cleanLogits, err := r.Cache(clean, hooks)
	if err != nil {
		return nil, err
	}
	tr, err := m.Forward(corrupt, vit.Options{})
	if err != nil {
		return nil, err
	}
	hp := &HeadPatching{Target: lens.Argmax(cleanLogits), run: r, corrupt: corrupt, src: src, sites: sites}
	r.Metric = patching.Metric{Kind: "logit", A: hp.Target}
	rank := patching.Metric{Kind: "rank", A: hp.Target}
	hp.CleanLogit, hp.CorruptLogit = r.Metric.Value(cleanLogits), r.Metric.Value(tr.Logits)
	hp.CleanRank, hp.CorruptRank = int(rank.Value(cleanLogits)), int(rank.Value(tr.Logits))
	res, err := r.Patch(corrupt, sites, src, hp.CleanLogit, hp.CorruptLogit)
	if err != nil {
		return nil, err
	}
	hp.Effect = make([][]float64, c.Depth)
	for b := range hp.Effect {
		hp.Effect[b] = make([]float64, c.Heads)
	}
	for _, p := range res {
		hp.Effect[p.Hook.Block][p.Head] = p.Metric - hp.CorruptLogit
	}
	hp.run = r
	return hp, nil
}

// Cell patches one head of one block and returns the target's rank (0 is
// the top class) and logit.
func (hp *HeadPatching) Cell(block, head int) (rank int, logit float64, err error) {
	for _, s := range hp.sites {
		if s.Hook.Block != block || s.Head != head {
			continue
		}
		r := hp.run
		r.Metric = patching.Metric{Kind: "rank", A: hp.Target}
		res, err := r.Patch(hp.corrupt, []patching.Site{s}, hp.src, 0, 0)
		if err != nil {
			return 0, 0, err
		}
		return int(res[0].Metric), hp.CorruptLogit + hp.Effect[block][head], nil
	}
	return 0, 0, fmt.Errorf("no head %d in block %d", head, block)
}

// ActivationsFile is the image's activations at every hook point, every
// token, float32, in the layout of a `vitlens cache` chunk file (one image:
// a tensor per hook named by it, [1, tokens, ...]; "images" and the id in
// the metadata).
func ActivationsFile(m *vit.Model, pixels *vit.Tensor, id string) ([]byte, error) {
	c := m.Config
	hooks := c.Hooks()
	positions, err := activations.AllTokens.Positions(c)
	if err != nil {
		return nil, err
	}
	fns, cache := vit.CacheHooks(hooks)
	if _, err := m.Forward(pixels, vit.Options{Hooks: fns}); err != nil {
		return nil, err
	}
	sel := map[vit.Hook]*vit.Tensor{}
	for h, a := range cache {
		sel[h] = activations.Select(h, a, positions)
	}
	b := activations.NewBatch(hooks)
	if err := b.Add(0, id, sel); err != nil {
		return nil, err
	}
	return b.Safetensors(activations.F32, map[string]string{"hooks": "all", "tokens": string(activations.AllTokens)})
}
