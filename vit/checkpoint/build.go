package checkpoint

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"vitlens/vit"
)

// structure is what the tensor names alone tell about the architecture.
type structure struct {
	depth   int
	cls     bool // class token
	dist    bool // DeiT distillation token or head
	qkvBias bool
	fcNorm  bool // classifier norm after pooling (timm fc_norm)
	norm    bool // classifier norm before pooling (timm norm)
}

// build runs the steps after decoding: rename to canonical names, check the
// name set, infer and merge the config, check shapes and values, assemble.
// The model shares the tensors' data (no copy: ViT-L is 1.2 GB of float32).
func build(tensors map[string]*vit.Tensor, meta map[string]string, opt Options, info *Info) (*vit.Model, error) {
	if len(tensors) == 0 {
		return nil, errors.New("no tensors in the checkpoint")
	}
	for name, t := range tensors {
		if t == nil || t.Numel() != len(t.Data) {
			return nil, fmt.Errorf("tensor %q: shape and data disagree", name)
		}
	}
	// Training scripts save DataParallel or wrapper modules, whose names
	// carry "module." / "model." scopes (the paper's CIFAR and DeiT files).
	stripped := make(map[string]string, len(tensors)) // stripped → file name
	for name := range tensors {
		s := name
		for {
			t, ok := strings.CutPrefix(s, "module.")
			if !ok {
				t, ok = strings.CutPrefix(s, "model.")
			}
			if !ok {
				break
			}
			s = t
		}
		if prev, dup := stripped[s]; dup {
			return nil, fmt.Errorf("tensors %q and %q are the same once the module./model. prefix is removed", prev, name)
		}
		stripped[s] = name
	}
	names := sortedKeys(stripped)
	fam, err := detect(names)
	if err != nil {
		return nil, err
	}
	info.Family = fam.name
	info.Scope = scopeOf(fam, names)
	if opt.ConfigJSON != nil {
		var cj struct {
			ModelType string `json:"model_type"`
		}
		if json.Unmarshal(opt.ConfigJSON, &cj) == nil {
			info.ModelType = cj.ModelType
		}
	}

	canon := map[string]*vit.Tensor{}
	origin := map[string]string{} // canonical name → the file's name(s), for messages
	parts := map[string]*[4]string{}
	var unknown, missing []string
	st := structure{}
	for _, s := range names {
		file := stripped[s]
		to, p, block, ok := fam.match(s)
		if !ok {
			unknown = append(unknown, file)
			continue
		}
		st.depth = max(st.depth, block+1)
		if p == whole {
			if prev, dup := origin[to]; dup {
				return nil, fmt.Errorf("tensors %q and %q both give %s", prev, file, to)
			}
			canon[to], origin[to] = tensors[file], file
			continue
		}
		if parts[to] == nil {
			parts[to] = new([4]string)
		}
		parts[to][p] = file
	}
	for _, to := range sortedKeys(parts) {
		ps := parts[to]
		if ps[q] == "" || ps[k] == "" || ps[v] == "" {
			for i, f := range fam.foreign(to) {
				if ps[q+part(i)] == "" {
					missing = append(missing, f)
				}
			}
			origin[to] = "(incomplete)"
			continue
		}
		fused, err := concatRows(tensors[ps[q]], tensors[ps[k]], tensors[ps[v]])
		if err != nil {
			return nil, fmt.Errorf("fusing %s, %s, %s: %w", ps[q], ps[k], ps[v], err)
		}
		canon[to], origin[to] = fused, ps[q]+" + key + value"
	}

	has := func(name string) bool { _, ok := origin[name]; return ok }
	st.cls = has("cls_token")
	st.dist = has("dist_token") || has("head_dist.weight") || has("head_dist.bias")
	st.fcNorm = has("fc_norm.weight") || has("fc_norm.bias")
	st.norm = has("norm.weight") || has("norm.bias")
	for i := 0; i < st.depth; i++ {
		st.qkvBias = st.qkvBias || has(fmt.Sprintf("blocks.%d.attn.qkv.bias", i))
	}
	info.Distilled = st.dist
	if st.dist && !opt.NonStrict {
		return nil, errors.New("distilled DeiT not supported: its distillation token (dist_token / head_dist) takes part in every block's attention, which vit.Model cannot express; NonStrict drops it (an approximation)")
	}

	want := expectedNames(st)
	wanted := map[string]bool{}
	for _, w := range want {
		wanted[w] = true
		if !has(w) {
			missing = append(missing, fam.foreign(w)...)
		}
	}
	var unexpected []string
	for _, to := range sortedKeys(origin) {
		if !wanted[to] && origin[to] != "(incomplete)" {
			unexpected = append(unexpected, origin[to])
		}
	}
	unexpected = append(unexpected, unknown...)
	sort.Strings(unexpected)
	switch {
	case len(missing) > 0 && len(unexpected) > 0 && !opt.NonStrict:
		return nil, fmt.Errorf("%s checkpoint does not match: %d missing tensors: %s; %d unexpected tensors: %s", fam.name, len(missing), listNames(missing), len(unexpected), listNames(unexpected))
	case len(missing) > 0:
		return nil, fmt.Errorf("%s checkpoint is missing %d tensors: %s", fam.name, len(missing), listNames(missing))
	case len(unexpected) > 0 && !opt.NonStrict:
		return nil, fmt.Errorf("%s checkpoint has %d unexpected tensors (NonStrict would skip them): %s", fam.name, len(unexpected), listNames(unexpected))
	}
	info.Ignored = unexpected
	if st.dist {
		info.Ignored = append(info.Ignored, "pos_embed[1]")
	}

	inferred, err := inferConfig(canon, st, fam, origin)
	if err != nil {
		return nil, err
	}
	cfg, source, err := mergeConfig(inferred, meta, opt)
	if err != nil {
		return nil, err
	}
	info.Config, info.ConfigSource = cfg, source

	for _, name := range want {
		t := canon[name]
		if w := wantShape(name, cfg, st); !sameShape(t.Shape, w) {
			return nil, fmt.Errorf("tensor %s has shape %v, want %v", origin[name], t.Shape, w)
		}
		for i, x := range t.Data {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				return nil, fmt.Errorf("tensor %s holds %v at index %d (of %d values): corrupt or diverged weights", origin[name], x, i, len(t.Data))
			}
		}
	}
	m := assemble(cfg, canon, st)
	if err := m.CheckShapes(); err != nil {
		return nil, err
	}
	return m, nil
}

// scopeOf returns the family's optional scope that the names carry ("" when
// none does).
func scopeOf(fam *family, names []string) string {
	for _, pre := range fam.prefixes {
		for _, n := range names {
			if strings.HasPrefix(n, pre) {
				return pre
			}
		}
	}
	return ""
}

func expectedNames(st structure) []string {
	n := []string{"patch_embed.proj.weight", "patch_embed.proj.bias", "pos_embed"}
	if st.cls {
		n = append(n, "cls_token")
	}
	for i := 0; i < st.depth; i++ {
		for _, s := range []string{"norm1.weight", "norm1.bias", "attn.qkv.weight", "attn.qkv.bias", "attn.proj.weight", "attn.proj.bias",
			"norm2.weight", "norm2.bias", "mlp.fc1.weight", "mlp.fc1.bias", "mlp.fc2.weight", "mlp.fc2.bias"} {
			if s != "attn.qkv.bias" || st.qkvBias {
				n = append(n, "blocks."+strconv.Itoa(i)+"."+s)
			}
		}
	}
	if st.fcNorm {
		n = append(n, "fc_norm.weight", "fc_norm.bias")
	} else {
		n = append(n, "norm.weight", "norm.bias")
	}
	return append(n, "head.weight", "head.bias")
}

// wantShape is the torch shape of a canonical tensor under cfg.
func wantShape(name string, c vit.Config, st structure) []int {
	d, p := c.Dim, c.PatchSize
	if rest, ok := strings.CutPrefix(name, "blocks."); ok {
		_, name, _ = strings.Cut(rest, ".") // drop the block index
	}
	switch name {
	case "patch_embed.proj.weight":
		return []int{d, c.Channels, p, p}
	case "cls_token":
		return []int{1, 1, d}
	case "pos_embed":
		t := c.NumTokens()
		if st.dist {
			t++
		}
		return []int{1, t, d}
	case "attn.qkv.weight":
		return []int{3 * d, d}
	case "attn.qkv.bias":
		return []int{3 * d}
	case "attn.proj.weight":
		return []int{d, d}
	case "mlp.fc1.weight":
		return []int{c.MLPDim, d}
	case "mlp.fc1.bias":
		return []int{c.MLPDim}
	case "mlp.fc2.weight":
		return []int{d, c.MLPDim}
	case "head.weight":
		return []int{c.Classes, d}
	case "head.bias":
		return []int{c.Classes}
	}
	return []int{d} // biases and norms of width D
}

// sameShape ignores leading ones, so cls_token may be [D], [1, D] or
// [1, 1, D]: the values are laid out the same.
func sameShape(got, want []int) bool {
	trim := func(s []int) []int {
		for len(s) > 1 && s[0] == 1 {
			s = s[1:]
		}
		return s
	}
	g, w := trim(got), trim(want)
	if len(g) != len(w) {
		return false
	}
	for i := range g {
		if g[i] != w[i] {
			return false
		}
	}
	return true
}

// inferConfig reads every shape-given field off the tensors. Heads cannot be
// read off shapes; mergeConfig fills them.
func inferConfig(t map[string]*vit.Tensor, st structure, fam *family, origin map[string]string) (vit.Config, error) {
	c := vit.Config{Depth: st.depth, QKVBias: st.qkvBias, ClassToken: st.cls, LNEps: fam.lnEps}
	if st.depth == 0 {
		return c, errors.New("no transformer blocks found")
	}
	pw := t["patch_embed.proj.weight"].Shape
	if len(pw) != 4 || pw[2] != pw[3] || pw[0] == 0 || pw[1] == 0 || pw[2] == 0 {
		return c, fmt.Errorf("tensor %s has shape %v, want [dim, channels, patch, patch]", origin["patch_embed.proj.weight"], pw)
	}
	c.Dim, c.Channels, c.PatchSize = pw[0], pw[1], pw[2]

	pos := t["pos_embed"].Shape
	if len(pos) < 2 || pos[len(pos)-1] != c.Dim {
		return c, fmt.Errorf("tensor %s has shape %v, want [1, tokens, %d]", origin["pos_embed"], pos, c.Dim)
	}
	prefix := 0
	if st.cls {
		prefix++
	}
	if st.dist {
		prefix++
	}
	n := pos[len(pos)-2] - prefix
	g := int(math.Sqrt(float64(n)) + 0.5)
	if n <= 0 || g*g != n {
		return c, fmt.Errorf("tensor %s has %d patch positions (after %d special tokens): not a square grid", origin["pos_embed"], n, prefix)
	}
	c.ImageSize = g * c.PatchSize

	if fc1 := t["blocks.0.mlp.fc1.weight"].Shape; len(fc1) == 2 {
		c.MLPDim = fc1[0]
	} else {
		return c, fmt.Errorf("tensor %s has shape %v, want [mlp_dim, %d]", origin["blocks.0.mlp.fc1.weight"], fc1, c.Dim)
	}
	if h := t["head.weight"].Shape; len(h) == 2 {
		c.Classes = h[0]
	} else {
		return c, fmt.Errorf("tensor %s has shape %v, want [classes, %d]", origin["head.weight"], h, c.Dim)
	}

	switch {
	case st.fcNorm && st.cls:
		return c, errors.New("class token with fc_norm (timm global_pool='avg' over patch tokens only) is not supported: vit.Config's mean pool averages every token")
	case st.fcNorm:
		// Mean-pooled without [CLS] and no final norm before pooling: in timm
		// that is vit_base_patch16_rpn_224, the only such model, and it uses
		// residual post-norm blocks (ResPostBlock), whose names are those of a
		// pre-norm block. config.json or metadata can say post_norm false.
		c.Pool, c.PostNorm = vit.PoolMean, !st.norm
	case !st.cls:
		return c, errors.New("no class token, and the final norm comes before pooling (timm fc_norm=False GAP models): not supported, vit.Model applies its norm after mean pooling")
	default:
		c.Pool = vit.PoolCLS
	}
	return c, nil
}

// concatRows stacks tensors of equal shape along their first dimension.
func concatRows(ts ...*vit.Tensor) (*vit.Tensor, error) {
	s0 := ts[0].Shape
	out := &vit.Tensor{}
	for _, t := range ts {
		if len(t.Shape) == 0 || len(t.Shape) != len(s0) || !sameShape(t.Shape[1:], s0[1:]) || t.Shape[0] != s0[0] {
			return nil, fmt.Errorf("shapes %v and %v differ", s0, t.Shape)
		}
		out.Data = append(out.Data, t.Data...)
	}
	out.Shape = append([]int{len(ts) * s0[0]}, s0[1:]...)
	return out, nil
}

func assemble(c vit.Config, t map[string]*vit.Tensor, st structure) *vit.Model {
	d := c.Dim
	data := func(name string) []float32 {
		if x, ok := t[name]; ok {
			return x.Data
		}
		return nil
	}
	lin := func(name string, out, in int) vit.Linear {
		return vit.Linear{In: in, Out: out, W: data(name + ".weight"), B: data(name + ".bias")}
	}
	norm := func(name string) vit.Norm { return vit.Norm{W: data(name + ".weight"), B: data(name + ".bias")} }

	m := &vit.Model{Config: c}
	m.Patch = lin("patch_embed.proj", d, c.Channels*c.PatchSize*c.PatchSize)
	if c.ClassToken {
		m.ClsToken = data("cls_token")
	}
	m.PosEmbed = data("pos_embed")
	if st.dist { // drop the distillation token's row (row 1, after [CLS])
		m.PosEmbed = append(append([]float32{}, m.PosEmbed[:d]...), m.PosEmbed[2*d:]...)
	}
	for i := 0; i < c.Depth; i++ {
		p := "blocks." + strconv.Itoa(i) + "."
		m.Blocks = append(m.Blocks, vit.Block{
			Norm1: norm(p + "norm1"),
			QKV:   lin(p+"attn.qkv", 3*d, d),
			Proj:  lin(p+"attn.proj", d, d),
			Norm2: norm(p + "norm2"),
			FC1:   lin(p+"mlp.fc1", c.MLPDim, d),
			FC2:   lin(p+"mlp.fc2", d, c.MLPDim),
		})
	}
	if st.fcNorm {
		m.Norm = norm("fc_norm")
	} else {
		m.Norm = norm("norm")
	}
	m.Head = lin("head", c.Classes, d)
	return m
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// listNames sorts names and caps the list, for messages a person reads.
func listNames(names []string) string {
	s := append([]string{}, names...)
	sort.Strings(s)
	const limit = 20
	if len(s) > limit {
		return strings.Join(s[:limit], ", ") + fmt.Sprintf(", ... and %d more", len(s)-limit)
	}
	return strings.Join(s, ", ")
}
