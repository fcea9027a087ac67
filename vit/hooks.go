package vit

import (
	"fmt"
	"strconv"
	"strings"
)

// HookPoint is a kind of named place in the forward pass where an
// activation can be read or replaced. Names follow TransformerLens (and so
// ViT-Prisma and SAELens, whose files name their hook point this way).
type HookPoint int

const (
	// HookEmbed is the token embeddings before position embeddings: the
	// prefix tokens ([CLS], distillation token, registers) and the patch
	// embedding, NumTokens×D.
	HookEmbed HookPoint = iota
	// HookPosEmbed is the position embedding added to them, NumTokens×D
	// (zero rows for prefix tokens of no_embed_class models).
	HookPosEmbed
	HookResidPre // block input (the residual stream), n×D
	HookQ        // queries (bias included), n×H×dh
	HookK        // keys, n×H×dh
	HookV        // values, n×H×dh
	HookPattern  // post-softmax (and post-edit) attention, H×n×n
	HookZ        // per-head outputs A·V before the output projection, n×H×dh
	HookAttnOut  // what attention adds to the stream (post-norm: after LN1), n×D
	HookResidMid // the stream after the attention addition, n×D
	HookMLPPre   // fc1 output before the activation, n×MLPDim
	HookMLPPost  // after the activation, n×MLPDim
	HookMLPOut   // what the MLP adds to the stream (post-norm: after LN2), n×D
	HookResidPost
	NumHookPoints
)

// hookPointNames are the TransformerLens names, without the "blocks.{b}."
// prefix for the per-block points.
var hookPointNames = [NumHookPoints]string{
	"hook_embed", "hook_pos_embed", "hook_resid_pre",
	"attn.hook_q", "attn.hook_k", "attn.hook_v", "attn.hook_pattern", "attn.hook_z",
	"hook_attn_out", "hook_resid_mid", "mlp.hook_pre", "mlp.hook_post", "hook_mlp_out", "hook_resid_post",
}

// HookAliases maps the names vitlens used before the hook points (sites and
// taps in tables, flags and goldens) to their hook point.
var HookAliases = map[string]HookPoint{
	"hs": HookResidPost, "hs_mid": HookResidMid, "attn": HookAttnOut, "mlp": HookMLPOut,
	"attn_probs": HookPattern, "values": HookV, "fc1": HookMLPPre, "heads": HookZ,
}

func (p HookPoint) String() string {
	if p >= 0 && p < NumHookPoints {
		return hookPointNames[p]
	}
	return fmt.Sprintf("HookPoint(%d)", int(p))
}

// PerBlock says whether the point exists once per block (else once per model).
func (p HookPoint) PerBlock() bool { return p != HookEmbed && p != HookPosEmbed }

// HasHeads says whether the activation has a head axis.
func (p HookPoint) HasHeads() bool {
	return p == HookQ || p == HookK || p == HookV || p == HookPattern || p == HookZ
}

// Hook is one hook point of one model: a point and, for per-block points,
// the block (0-based).
type Hook struct {
	Point HookPoint
	Block int
}

// Name is the TransformerLens name, e.g. "blocks.3.attn.hook_z".
func (h Hook) Name() string {
	if !h.Point.PerBlock() {
		return h.Point.String()
	}
	return fmt.Sprintf("blocks.%d.%s", h.Block, h.Point)
}

func (h Hook) String() string { return h.Name() }

// HookShape is the activation's shape at hook h for a sequence of n tokens
// (n = NumTokens for the embedding points, whatever tokens are kept).
func (c Config) HookShape(h Hook, n int) []int {
	switch h.Point {
	case HookEmbed, HookPosEmbed:
		return []int{c.NumTokens(), c.Dim}
	case HookQ, HookK, HookV, HookZ:
		return []int{n, c.Heads, c.HeadDim()}
	case HookPattern:
		return []int{c.Heads, n, n}
	case HookMLPPre, HookMLPPost:
		return []int{n, c.MLPDim}
	}
	return []int{n, c.Dim}
}

// Hooks lists every hook of the model in forward order.
func (c Config) Hooks() []Hook {
	hs := []Hook{{Point: HookEmbed}, {Point: HookPosEmbed}}
	for b := 0; b < c.Depth; b++ {
		for p := HookResidPre; p < NumHookPoints; p++ {
			hs = append(hs, Hook{Point: p, Block: b})
		}
	}
	return hs
}

// ParseHook reads one hook name: a TransformerLens name
// ("blocks.3.hook_resid_post", "hook_embed") or an older vitlens alias with
// its block ("blocks.3.hs").
func (c Config) ParseHook(name string) (Hook, error) {
	for p := HookEmbed; p < NumHookPoints; p++ {
		if !p.PerBlock() && name == p.String() {
			return Hook{Point: p}, nil
		}
	}
	rest, ok := strings.CutPrefix(name, "blocks.")
	if !ok {
		return Hook{}, fmt.Errorf("unknown hook %q: want hook_embed, hook_pos_embed or blocks.B.NAME (vitlens hooks lists them)", name)
	}
	num, point, ok := strings.Cut(rest, ".")
	b, err := strconv.Atoi(num)
	if !ok || err != nil {
		return Hook{}, fmt.Errorf("unknown hook %q: want blocks.B.NAME with B a block number", name)
	}
	if b < 0 || b >= c.Depth {
		return Hook{}, fmt.Errorf("hook %q: block %d out of range 0..%d", name, b, c.Depth-1)
	}
	for p := HookResidPre; p < NumHookPoints; p++ {
		if point == p.String() {
			return Hook{Point: p, Block: b}, nil
		}
	}
	if p, ok := HookAliases[point]; ok {
		return Hook{Point: p, Block: b}, nil
	}
	return Hook{}, fmt.Errorf("unknown hook %q: no point %q in a block (vitlens hooks lists them)", name, point)
}

// MatchHooks returns the model's hooks, in forward order, whose names match
// any of the comma-separated patterns: a name, or a name with "*" standing
// for any run of characters ("blocks.*.attn.hook_z", "*resid_post").
// Aliases are accepted in place of the point name.
func (c Config) MatchHooks(patterns string) ([]Hook, error) {
	var out []Hook
	seen := map[Hook]bool{}
	for _, pat := range strings.Split(patterns, ",") {
		pat = strings.TrimSpace(pat)
		if pat == "" {
			continue
		}
		if !strings.Contains(pat, "*") {
			h, err := c.ParseHook(pat)
			if err != nil {
				return nil, err
			}
			if !seen[h] {
				seen[h] = true
				out = append(out, h)
			}
			continue
		}
		pat = dealias(pat)
		n := 0
		for _, h := range c.Hooks() {
			if globMatch(pat, h.Name()) {
				n++
				if !seen[h] {
					seen[h] = true
					out = append(out, h)
				}
			}
		}
		if n == 0 {
			return nil, fmt.Errorf("hook pattern %q matches no hook of this model (vitlens hooks lists them)", pat)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no hook named (give names or patterns such as blocks.*.attn.hook_z)")
	}
	// Forward order, whatever order the patterns came in.
	order := map[Hook]int{}
	for i, h := range c.Hooks() {
		order[h] = i
	}
	sortHooks(out, order)
	return out, nil
}

// dealias rewrites a pattern's last dotted part when it is an alias.
func dealias(pat string) string {
	i := strings.LastIndex(pat, ".")
	if p, ok := HookAliases[pat[i+1:]]; ok {
		return pat[:i+1] + p.String()
	}
	return pat
}

func sortHooks(hs []Hook, order map[Hook]int) {
	for i := 1; i < len(hs); i++ {
		for j := i; j > 0 && order[hs[j]] < order[hs[j-1]]; j-- {
			hs[j], hs[j-1] = hs[j-1], hs[j]
		}
	}
}

// globMatch matches s against a pattern whose only special character is
// "*" (any run, possibly empty).
func globMatch(pat, s string) bool {
	parts := strings.Split(pat, "*")
	if !strings.HasPrefix(s, parts[0]) {
		return false
	}
	s = s[len(parts[0]):]
	for i, p := range parts[1:] {
		if i == len(parts)-2 {
			return strings.HasSuffix(s, p)
		}
		j := strings.Index(s, p)
		if j < 0 {
			return false
		}
		s = s[j+len(p):]
	}
	return s == ""
}

// HookFunc is called with the activation at a hook: a view into the
// forward's own buffer in the layout Config.HookShape gives, so reading it
// records the value and writing it changes what the rest of the forward
// sees. It must not keep the tensor past the call.
type HookFunc func(h Hook, act *Tensor)

// HookFuncs maps hooks to what is called there (Options.Hooks).
type HookFuncs map[Hook]HookFunc

// CacheHooks returns hook functions that copy the activation at each of hooks,
// and the map they fill (by hook), for reading after the forward.
func CacheHooks(hooks []Hook) (HookFuncs, map[Hook]*Tensor) {
	fns := HookFuncs{}
	cache := map[Hook]*Tensor{}
	for _, h := range hooks {
		fns[h] = func(h Hook, act *Tensor) {
			cache[h] = &Tensor{Shape: append([]int(nil), act.Shape...), Data: append([]float32(nil), act.Data...)}
		}
	}
	return fns, cache
}

// Merge returns the union of two sets of hook functions; where both hook
// the same point, a's runs first.
func (a HookFuncs) Merge(b HookFuncs) HookFuncs {
	out := HookFuncs{}
	for h, f := range a {
		out[h] = f
	}
	for h, g := range b {
		if f, ok := out[h]; ok {
			out[h] = func(h Hook, act *Tensor) { f(h, act); g(h, act) }
		} else {
			out[h] = g
		}
	}
	return out
}

// call runs the hook function at h, if any, on data viewed with shape.
func (fs HookFuncs) call(h Hook, data []float32, shape []int) {
	if f, ok := fs[h]; ok {
		f(h, &Tensor{Shape: shape, Data: data})
	}
}

// has says whether anything hooks h.
func (fs HookFuncs) has(p HookPoint, block int) bool {
	_, ok := fs[Hook{Point: p, Block: block}]
	return ok
}
