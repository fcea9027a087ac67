package checkpoint

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"

	"vitlens/vit"
	"vitlens/vit/preprocess"
)

// structure is what the tensor names alone tell about the architecture.
type structure struct {
	depth int
	cls   bool // class token
	dist  bool // DeiT distillation token or head
	regs  bool // register tokens
	// layerScale: LayerScale gammas (timm ls1/ls2), folded into attn.proj
	// and mlp.fc2 at load.
	layerScale bool
	// noEmbedClass is timm's no_embed_class: pos_embed covers the patches
	// only; inferConfig sets it from the row count.
	noEmbedClass bool
	posGrid      int // the position embedding's patch grid side (inferConfig)
	qkvBias      bool
	patchBias    bool // HF CLIP's patch embedding (and timm's CLIP towers') has none
	headless     bool // no head: the family's bare model (Dinov2Model), an identity head
	normPre      bool // timm norm_pre (CLIP-style towers)
	headBias     bool // CLIP's projection head has none
	fcNorm       bool // classifier norm after pooling (timm fc_norm)
	norm         bool // classifier norm before pooling (timm norm)
}

// build runs the steps after decoding, one function each: check the
// tensors, strip wrapper scopes, rename to canonical names, read the
// structure and check the name set, infer and merge the config, check shapes
// and values, assemble. The model shares the tensors' data (no copy: ViT-L
// is 1.2 GB of float32).
func build(tensors map[string]*vit.Tensor, meta map[string]string, opt Options, info *Info) (*vit.Model, error) {
	if err := checkTensors(tensors); err != nil {
		return nil, err
	}
	stripped, err := stripScopes(tensors)
	if err != nil {
		return nil, err
	}
	names := sortedKeys(stripped)
	fam, err := detect(names)
	if err != nil {
		return nil, err
	}
	info.Family, info.Scope, info.ModelType = fam.name, scopeOf(fam, names), modelType(opt.ConfigJSON)
	cn, err := canonicalize(tensors, stripped, names, fam)
	if err != nil {
		return nil, err
	}
	st := cn.structure(fam)
	info.Distilled = st.dist
	want := expectedNames(st)
	if info.Ignored, err = cn.checkNames(want, fam, opt); err != nil {
		return nil, err
	}
	inferred, err := inferConfig(cn.tensors, &st, fam, cn.origin)
	if err != nil {
		return nil, err
	}
	cfg, source, actSource, err := mergeConfig(inferred, meta, opt)
	if err != nil {
		return nil, err
	}
	if cfg.NormPre && cfg.Act == "" {
		return nil, errors.New(`norm_pre marks a CLIP-style tower, whose MLP activation the weights do not tell: say it with "act" in config.json or --config ("gelu", "gelu_tanh", or "quick_gelu" for OpenAI CLIP), or give timm's config.json with its "architecture"`)
	}
	if cfg.Act == vit.ActGELU {
		cfg.Act = "" // exact GELU is the zero value, so configs compare equal
	}
	info.Config, info.ConfigSource, info.ActSource = cfg, source, actSource
	if err := cn.checkValues(want, cfg, st); err != nil {
		return nil, err
	}
	if cfg.GridSize() != st.posGrid {
		info.PosGrid = st.posGrid
	}
	m := assemble(cfg, cn.tensors, st)
	if err := m.CheckShapes(); err != nil {
		return nil, err
	}
	m.Pack() // the weights held once, in the CPU GEMM's form
	return m, nil
}

// checkTensors refuses an empty checkpoint and tensors whose shape and data
// disagree.
func checkTensors(tensors map[string]*vit.Tensor) error {
	if len(tensors) == 0 {
		return errors.New("no tensors in the checkpoint")
	}
	for name, t := range tensors {
		if t == nil || t.Numel() != len(t.Data) {
			return fmt.Errorf("tensor %q: shape and data disagree", name)
		}
	}
	return nil
}

// stripScopes maps each name without its "module." / "model." scopes (the
// DataParallel or wrapper modules training scripts save, as the paper's
// CIFAR and DeiT files) to the file's name.
func stripScopes(tensors map[string]*vit.Tensor) (map[string]string, error) {
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
	return stripped, nil
}

// canonical is a checkpoint under canonical (timm) names.
type canonical struct {
	tensors map[string]*vit.Tensor
	origin  map[string]string // canonical name → the file's name(s), for messages
	depth   int
	unknown []string // file names no family pattern matches
	missing []string // file names of q/k/v parts whose siblings are absent
}

// canonicalize renames the tensors to canonical names and fuses separate
// query, key and value tensors into one qkv.
func canonicalize(tensors map[string]*vit.Tensor, stripped map[string]string, names []string, fam *family) (*canonical, error) {
	cn := &canonical{tensors: map[string]*vit.Tensor{}, origin: map[string]string{}}
	parts := map[string]*[4]string{}
	for _, s := range names {
		file := stripped[s]
		to, p, block, ok := fam.match(s)
		if !ok {
			cn.unknown = append(cn.unknown, file)
			continue
		}
		if p == skip {
			continue
		}
		cn.depth = max(cn.depth, block+1)
		if p == whole {
			if prev, dup := cn.origin[to]; dup {
				return nil, fmt.Errorf("tensors %q and %q both give %s", prev, file, to)
			}
			cn.tensors[to], cn.origin[to] = tensors[file], file
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
					cn.missing = append(cn.missing, f)
				}
			}
			cn.origin[to] = "(incomplete)"
			continue
		}
		fused, err := concatRows(tensors[ps[q]], tensors[ps[k]], tensors[ps[v]])
		if err != nil {
			return nil, fmt.Errorf("fusing %s, %s, %s: %w", ps[q], ps[k], ps[v], err)
		}
		cn.tensors[to], cn.origin[to] = fused, ps[q]+" + key + value"
	}
	return cn, nil
}

func (cn *canonical) has(name string) bool { _, ok := cn.origin[name]; return ok }

// structure reads the architecture off the canonical names.
func (cn *canonical) structure(fam *family) structure {
	st := structure{depth: cn.depth}
	st.patchBias = cn.has("patch_embed.proj.bias")
	st.headless = fam.headless && !cn.has("head.weight") && !cn.has("head.bias")
	st.cls = cn.has("cls_token")
	st.dist = cn.has("dist_token") || cn.has("head_dist.weight") || cn.has("head_dist.bias")
	st.regs = cn.has("reg_token")
	st.normPre = cn.has("norm_pre.weight") || cn.has("norm_pre.bias")
	st.headBias = cn.has("head.bias")
	st.fcNorm = cn.has("fc_norm.weight") || cn.has("fc_norm.bias")
	st.norm = cn.has("norm.weight") || cn.has("norm.bias")
	for i := 0; i < st.depth; i++ {
		st.qkvBias = st.qkvBias || cn.has(fmt.Sprintf("blocks.%d.attn.qkv.bias", i))
		st.layerScale = st.layerScale || cn.has(fmt.Sprintf("blocks.%d.ls1.gamma", i)) || cn.has(fmt.Sprintf("blocks.%d.ls2.gamma", i))
	}
	return st
}

// checkNames compares the name set with the structure's: missing tensors
// are an error, unexpected ones too unless NonStrict, which returns them
// (sorted) as ignored.
func (cn *canonical) checkNames(want []string, fam *family, opt Options) (ignored []string, err error) {
	missing := slices.Clone(cn.missing)
	wanted := map[string]bool{}
	for _, w := range want {
		wanted[w] = true
		if !cn.has(w) {
			missing = append(missing, fam.foreign(w)...)
		}
	}
	var unexpected []string
	for _, to := range sortedKeys(cn.origin) {
		if !wanted[to] && cn.origin[to] != "(incomplete)" {
			unexpected = append(unexpected, cn.origin[to])
		}
	}
	unexpected = append(unexpected, cn.unknown...)
	sort.Strings(unexpected)
	switch {
	case len(missing) > 0 && len(unexpected) > 0 && !opt.NonStrict:
		return nil, fmt.Errorf("%s checkpoint does not match: %d missing tensors: %s; %d unexpected tensors: %s", fam.name, len(missing), listNames(missing), len(unexpected), listNames(unexpected))
	case len(missing) > 0:
		return nil, fmt.Errorf("%s checkpoint is missing %d tensors: %s", fam.name, len(missing), listNames(missing))
	case len(unexpected) > 0 && !opt.NonStrict:
		return nil, fmt.Errorf("%s checkpoint has %d unexpected tensors (NonStrict would skip them): %s", fam.name, len(unexpected), listNames(unexpected))
	}
	return unexpected, nil
}

// checkValues checks every wanted tensor's shape under cfg and refuses NaN
// and infinite values.
func (cn *canonical) checkValues(want []string, cfg vit.Config, st structure) error {
	for _, name := range want {
		t := cn.tensors[name]
		if w := wantShape(name, cfg, st); !sameShape(t.Shape, w) {
			return fmt.Errorf("tensor %s has shape %v, want %v", cn.origin[name], t.Shape, w)
		}
		for i, x := range t.Data {
			if math.Float32bits(x)&0x7f800000 == 0x7f800000 { // all exponent bits: NaN or ±Inf
				return fmt.Errorf("tensor %s holds %v at index %d (of %d values): corrupt or diverged weights", cn.origin[name], x, i, len(t.Data))
			}
		}
	}
	return nil
}

// modelType is config.json's model_type ("" when there is none or it does
// not parse; mergeConfig reports a bad config.json).
func modelType(configJSON []byte) string {
	var cj struct {
		ModelType string `json:"model_type"`
	}
	if configJSON == nil || json.Unmarshal(configJSON, &cj) != nil {
		return ""
	}
	return cj.ModelType
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
	n := []string{"patch_embed.proj.weight", "pos_embed"}
	if st.patchBias {
		n = append(n, "patch_embed.proj.bias")
	}
	if st.cls {
		n = append(n, "cls_token")
	}
	if st.dist {
		n = append(n, "dist_token", "head_dist.weight", "head_dist.bias")
	}
	if st.regs {
		n = append(n, "reg_token")
	}
	if st.normPre {
		n = append(n, "norm_pre.weight", "norm_pre.bias")
	}
	for i := 0; i < st.depth; i++ {
		for _, s := range []string{"norm1.weight", "norm1.bias", "attn.qkv.weight", "attn.qkv.bias", "attn.proj.weight", "attn.proj.bias",
			"norm2.weight", "norm2.bias", "mlp.fc1.weight", "mlp.fc1.bias", "mlp.fc2.weight", "mlp.fc2.bias"} {
			if s != "attn.qkv.bias" || st.qkvBias {
				n = append(n, "blocks."+strconv.Itoa(i)+"."+s)
			}
		}
		if st.layerScale {
			n = append(n, "blocks."+strconv.Itoa(i)+".ls1.gamma", "blocks."+strconv.Itoa(i)+".ls2.gamma")
		}
	}
	if st.fcNorm {
		n = append(n, "fc_norm.weight", "fc_norm.bias")
	} else {
		n = append(n, "norm.weight", "norm.bias")
	}
	if st.headBias {
		n = append(n, "head.bias")
	}
	if st.headless {
		return n
	}
	return append(n, "head.weight")
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
	case "cls_token", "dist_token":
		return []int{1, 1, d}
	case "reg_token":
		return []int{1, c.Registers, d}
	case "pos_embed":
		rows := st.posGrid * st.posGrid
		if !st.noEmbedClass {
			rows += c.FirstImageToken()
		}
		return []int{1, rows, d}
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
	case "head.weight", "head_dist.weight":
		return []int{c.Classes, d}
	case "head.bias", "head_dist.bias":
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
	return slices.Equal(trim(got), trim(want))
}

// inferConfig reads every shape-given field off the tensors, and whether
// the position embedding covers the prefix tokens (st.noEmbedClass). Heads
// cannot be read off shapes; mergeConfig fills them.
func inferConfig(t map[string]*vit.Tensor, st *structure, fam *family, origin map[string]string) (vit.Config, error) {
	c := vit.Config{Depth: st.depth, QKVBias: st.qkvBias, ClassToken: st.cls, DistToken: st.dist, NormPre: st.normPre, LNEps: fam.lnEps}
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
	if st.regs {
		r := t["reg_token"].Shape
		if len(r) < 2 || r[len(r)-1] != c.Dim || r[len(r)-2] == 0 || len(r) == 3 && r[0] != 1 {
			return c, fmt.Errorf("tensor %s has shape %v, want [1, registers, %d]", origin["reg_token"], r, c.Dim)
		}
		c.Registers = r[len(r)-2]
	}
	if st.layerScale && st.fcNorm && !st.norm {
		return c, errors.New("LayerScale (ls1/ls2) with post-norm blocks is not supported: the gammas fold into pre-norm sublayers only")
	}
	prefix := c.FirstImageToken()
	isGrid := func(n int) bool { g := int(math.Sqrt(float64(n)) + 0.5); return n > 0 && g*g == n }
	// timm's no_embed_class models (DINOv2, DeiT-III) have position rows for
	// the patches only. A row count that fits both layouts is read as the
	// usual one (rows for the prefix tokens too).
	n := pos[len(pos)-2] - prefix
	if !isGrid(n) && prefix > 0 && isGrid(pos[len(pos)-2]) {
		n, st.noEmbedClass = pos[len(pos)-2], true
	}
	if !isGrid(n) {
		return c, fmt.Errorf("tensor %s has %d patch positions (after %d special tokens): not a square grid", origin["pos_embed"], n, prefix)
	}
	g := int(math.Sqrt(float64(n)) + 0.5)
	st.posGrid = g
	c.ImageSize = g * c.PatchSize

	if fc1 := t["blocks.0.mlp.fc1.weight"].Shape; len(fc1) == 2 {
		c.MLPDim = fc1[0]
	} else {
		return c, fmt.Errorf("tensor %s has shape %v, want [mlp_dim, %d]", origin["blocks.0.mlp.fc1.weight"], fc1, c.Dim)
	}
	if st.headless {
		c.Classes = c.Dim // the normed [CLS] is the output
	} else if h := t["head.weight"].Shape; fam.name == HFDINOv2 && len(h) == 2 && h[1] == 2*c.Dim {
		return c, fmt.Errorf("tensor %s is [%d, %d]: Dinov2ForImageClassification's classifier reads [CLS] and the mean of the patch tokens together, not one token, so the class-embedding lens cannot read a token through it; "+
			"load the backbone without classifier.weight and classifier.bias (Dinov2Model) and give class embeddings for its [CLS] with --head (tools/make_head.py)", origin["head.weight"], h[0], h[1])
	} else if len(h) == 2 {
		c.Classes = h[0]
	} else {
		return c, fmt.Errorf("tensor %s has shape %v, want [classes, %d]", origin["head.weight"], t["head.weight"].Shape, c.Dim)
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
	if m.Patch.B == nil { // HF CLIP's patch embedding has no bias
		m.Patch.B = make([]float32, d)
	}
	if c.ClassToken {
		m.ClsToken = data("cls_token")
	}
	if c.DistToken {
		m.DistToken = data("dist_token")
	}
	if c.Registers > 0 {
		m.RegTokens = data("reg_token")
	}
	m.PosEmbed = data("pos_embed")
	if c.NormPre {
		m.NormPre = norm("norm_pre")
	}
	if g := c.GridSize(); g != st.posGrid {
		// Another image size than the checkpoint's: resize the patch rows
		// as timm does (bicubic, antialiased); prefix rows stay as they are.
		prefix := 0
		if !st.noEmbedClass {
			prefix = c.FirstImageToken() * d
		}
		m.PosEmbed = append(slices.Clone(m.PosEmbed[:prefix]), preprocess.ResizeGrid(m.PosEmbed[prefix:], st.posGrid, g, d)...)
	}
	if st.noEmbedClass {
		// Zero rows for the prefix tokens: adding nothing to them is what
		// timm does when it prepends them after the position embedding.
		m.PosEmbed = append(make([]float32, c.FirstImageToken()*d), m.PosEmbed...)
	}
	for i := 0; i < c.Depth; i++ {
		p := "blocks." + strconv.Itoa(i) + "."
		blk := vit.Block{
			Norm1: norm(p + "norm1"),
			QKV:   lin(p+"attn.qkv", 3*d, d),
			Proj:  lin(p+"attn.proj", d, d),
			Norm2: norm(p + "norm2"),
			FC1:   lin(p+"mlp.fc1", c.MLPDim, d),
			FC2:   lin(p+"mlp.fc2", d, c.MLPDim),
		}
		if st.layerScale {
			blk.Proj = foldScale(blk.Proj, data(p+"ls1.gamma"))
			blk.FC2 = foldScale(blk.FC2, data(p+"ls2.gamma"))
		}
		m.Blocks = append(m.Blocks, blk)
	}
	if st.fcNorm {
		m.Norm = norm("fc_norm")
	} else {
		m.Norm = norm("norm")
	}
	m.Head = lin("head", c.Classes, d)
	if st.headless {
		m.Head.W = make([]float32, d*d)
		for i := range d {
			m.Head.W[i*d+i] = 1
		}
	}
	if m.Head.B == nil { // a bias-free projection (CLIP) reads as a zero bias
		m.Head.B = make([]float32, c.Classes)
	}
	if st.dist {
		m.HeadCLS, m.HeadDist = m.Head, lin("head_dist", c.Classes, d)
		m.Head = vit.MeanHead(m.HeadCLS, m.HeadDist)
	}
	return m
}

// foldScale is LayerScale folded into the layer before it: γ⊙(W·x + b) =
// (diag(γ)·W)·x + γ⊙b, so the `attn` and `mlp` sites are exactly what the
// block adds to the stream, and every backend runs the model unchanged. It
// writes new slices: the tensors may be the caller's (FromTensors).
func foldScale(l vit.Linear, gamma []float32) vit.Linear {
	out := vit.Linear{In: l.In, Out: l.Out, W: make([]float32, len(l.W)), B: make([]float32, len(l.B))}
	for o := 0; o < l.Out; o++ {
		for i := 0; i < l.In; i++ {
			out.W[o*l.In+i] = gamma[o] * l.W[o*l.In+i]
		}
		if l.B != nil {
			out.B[o] = gamma[o] * l.B[o]
		}
	}
	if l.B == nil {
		out.B = nil
	}
	return out
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
