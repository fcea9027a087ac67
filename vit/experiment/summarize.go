package experiment

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"

	"vitlens/vit"
	"vitlens/vit/analysis"
	"vitlens/vit/results"
	"vitlens/vit/stats"
)

// errStop ends a ReadRows scan early without being an error.
var errStop = errors.New("stop")

// SummaryOptions control Summarize.
type SummaryOptions struct {
	Random string // results folder of a random-model extract over the same images
	// RandomTokens is the token set of the paired test against Random
	// (default analysis.PairAllTokens, the original's).
	RandomTokens analysis.PairTokens
	// Unperturbed is the extract over the same images that a perturb-tokens
	// run is compared with (the original's print_context_perturb).
	Unperturbed string
	Permutation int // rounds of the class-vs-context test (300 in the paper)
	Seed        uint64
}

// Summarize reads an extract (or perturbation) results folder image by image
// and computes the paper's identifiability statistics.
func Summarize(dir string, opt SummaryOptions) (*analysis.Report, error) {
	m, err := results.ReadManifest(dir)
	if err != nil {
		return nil, err
	}
	pairs := analysis.PairNone
	if opt.Random != "" {
		pairs = opt.RandomTokens
		if pairs == analysis.PairNone {
			pairs = analysis.PairAllTokens
		}
	}
	sum, err := summarizeDir(dir, m, pairs)
	if err != nil {
		return nil, err
	}
	fo := analysis.Options{Permutation: opt.Permutation, Seed: opt.Seed}
	if opt.Random != "" {
		rm, err := sameImages(dir, m, opt.Random, "the paired test against the random model")
		if err != nil {
			return nil, err
		}
		if fo.Random, err = summarizeDir(opt.Random, rm, pairs); err != nil {
			return nil, err
		}
	}
	rep, err := sum.Finish(fo)
	if err != nil || opt.Unperturbed == "" {
		return rep, err
	}
	if m.Experiment != string(PerturbTokens) {
		return nil, fmt.Errorf("%s is a %s run: the comparison with an unperturbed run (--unperturbed) is for perturb-tokens runs", dir, m.Experiment)
	}
	um, err := sameImages(dir, m, opt.Unperturbed, "the context-perturbation comparison")
	if err != nil {
		return nil, err
	}
	if um.Experiment != string(Extract) || um.Seed != nil {
		return nil, fmt.Errorf("%s: --unperturbed wants an extract of the pretrained model, not a %s run", opt.Unperturbed, um.Experiment)
	}
	base, err := summarizeDir(opt.Unperturbed, um, analysis.PairNone)
	if err != nil {
		return nil, err
	}
	baseRep, err := base.Finish(analysis.Options{})
	if err != nil {
		return nil, err
	}
	if rep.ContextPerturbation, err = analysis.CompareContext(m.Params["drop"], rep, baseRep); err != nil {
		return nil, fmt.Errorf("%s against %s: %w", dir, opt.Unperturbed, err)
	}
	return rep, nil
}

// sameImages reads the manifest of other and checks that it covers the same
// images with the same architecture as the run in dir.
func sameImages(dir string, m results.Manifest, other, purpose string) (results.Manifest, error) {
	om, err := results.ReadManifest(other)
	if err != nil {
		return om, err
	}
	if om.Dataset != m.Dataset || om.Selection != m.Selection || om.Total != m.Total || om.Config != m.Config {
		return om, fmt.Errorf("%s and %s are not the same images and architecture: %s needs both", dir, other, purpose)
	}
	return om, nil
}

func summarizeDir(dir string, m results.Manifest, pairs analysis.PairTokens) (*analysis.Summary, error) {
	c := m.Config
	correct := map[int32]bool{}
	if err := results.ReadRows(dir, "images", func(r ImageRow) error {
		correct[r.Image] = r.Correct
		return nil
	}); err != nil {
		return nil, err
	}
	sum := analysis.NewSummary(c.Classes, c.Depth, pairs)
	var cur *analysis.Image
	var pos map[int32]int // token → position of the current image
	flush := func() error {
		if cur == nil {
			return nil
		}
		return sum.Add(cur)
	}
	extra := c.Registers // the tokens after [CLS] that are not patches
	if c.DistToken {
		extra++
	}
	err := results.ReadRows(dir, "ranks", func(r RankRow) error {
		if cur == nil || int32(cur.Image) != r.Image {
			if err := flush(); err != nil {
				return err
			}
			cur = &analysis.Image{Image: int(r.Image), Label: int(r.Label), Correct: correct[r.Image], HasCLS: c.ClassToken, Extra: extra}
			pos = map[int32]int{}
		}
		s, err := vit.ParseSite(r.Site)
		if err != nil {
			return fmt.Errorf("%s: %w", dir, err)
		}
		p, ok := pos[r.Token]
		if !ok {
			p = len(cur.Tokens)
			pos[r.Token] = p
			cur.Tokens = append(cur.Tokens, int(r.Token))
			cur.PatchLabels = append(cur.PatchLabels, int8(r.PatchLabel))
		}
		if cur.Rank[s] == nil {
			cur.Rank[s] = make([][]int32, c.Depth)
			cur.Top1[s] = make([][]int32, c.Depth)
			cur.Logit[s] = make([][]float32, c.Depth)
		}
		if int(r.Block) >= c.Depth || r.Block < 0 {
			return fmt.Errorf("%s: block %d out of range", dir, r.Block)
		}
		b := r.Block
		if cls, image := c.ClassToken && r.Token == 0, int(r.Token) >= c.FirstImageToken(); s == vit.SiteHS && (cls || image) {
			sum.Lens.Add(int(b), cls, r.Entropy, r.KLLast)
		}
		for len(cur.Rank[s][b]) <= p {
			cur.Rank[s][b] = append(cur.Rank[s][b], 0)
			cur.Top1[s][b] = append(cur.Top1[s][b], 0)
			cur.Logit[s][b] = append(cur.Logit[s][b], float32(math.NaN()))
		}
		cur.Rank[s][b][p], cur.Top1[s][b][p], cur.Logit[s][b][p] = r.Rank, r.Top1, r.TargetLogit
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return sum, nil
}

// MemoryBlock is one block's key-value memory statistics.
type MemoryBlock struct {
	Block int `json:"block"`
	// Key-value agreement rate: mean over concepts of the share of (image,
	// token) pairs whose top memories meet the label's (and, as baseline, a
	// random class's) top memories; and for [CLS] only.
	Agreement, AgreementRandom, CLSAgreement float64
	// Compositionality: share of tokens with a top memory promoting the
	// sublayer's top-1 class.
	Composition float64
	// [CLS] agreement of correctly minus incorrectly classified images, with
	// a permutation test over images.
	CorrectMinusIncorrect, CorrectP float64
	// Class-value agreement: mean over classes of the best cosine, for the
	// model and the seeded random model, and the paired Wilcoxon p.
	ClassValue, ClassValueRandom, ClassValueP float64
}

// MemoryReport is the memories experiment's summary.
type MemoryReport struct {
	Layer  string        `json:"layer"`
	Blocks []MemoryBlock `json:"blocks"`
	// Values lists, per block, the most-used memories and the classes their
	// value vectors promote (the original's interpretable value vectors).
	Values []ValueVector `json:"value_vectors"`
	Notes  []string      `json:"notes,omitempty"`
}

// ValueVector is one of a block's most-used memories: how often it is among
// a token's top-5 memories, and the top-5 classes of its column of E·W_out.
type ValueVector struct {
	Block   int     `json:"block"`
	Memory  int     `json:"memory"`
	Uses    int     `json:"uses"`    // (image, token) pairs with it among their top-5 memories
	Share   float64 `json:"share"`   // uses / (image, token) pairs
	Classes []int32 `json:"classes"` // best first
	Logit   float32 `json:"logit"`   // P[classes[0], memory]
}

// MostUsedMemories is how many memories per block the value-vector table lists.
const MostUsedMemories = 3

// SummarizeMemories reads a memories results folder.
func SummarizeMemories(dir string, permutation int, seed uint64) (*MemoryReport, error) {
	m, err := results.ReadManifest(dir)
	if err != nil {
		return nil, err
	}
	depth := m.Config.Depth
	type concept struct{ hit, hitRandom, n int }
	perConcept := make([]map[int32]*concept, depth)
	uses := make([]map[int32]int, depth) // memory → tokens with it in their top-5
	tokens := make([]int, depth)
	comp := make([]stats.Welford, depth)
	clsAgree := make([]stats.Welford, depth)
	clsVals := make([][]float64, depth) // per image [CLS] agreement
	clsCorrect := make([][]bool, depth)
	for b := range perConcept {
		perConcept[b] = map[int32]*concept{}
		uses[b] = map[int32]int{}
	}
	err = results.ReadRows(dir, "memories", func(r MemoryRow) error {
		b := r.Block
		if b < 0 || int(b) >= depth {
			return fmt.Errorf("%s: block %d out of range", dir, b)
		}
		c := perConcept[b][r.Label]
		if c == nil {
			c = &concept{}
			perConcept[b][r.Label] = c
		}
		c.n++
		if r.Agree {
			c.hit++
		}
		if r.AgreeRandom {
			c.hitRandom++
		}
		comp[b].Add(b2f(r.Composes))
		tokens[b]++
		for _, j := range [...]int32{r.Mem1, r.Mem2, r.Mem3, r.Mem4, r.Mem5} {
			if j >= 0 {
				uses[b][j]++
			}
		}
		if m.Config.ClassToken && r.Token == 0 {
			clsAgree[b].Add(b2f(r.Agree))
			clsVals[b] = append(clsVals[b], b2f(r.Agree))
			clsCorrect[b] = append(clsCorrect[b], r.Correct)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	rep := &MemoryReport{Layer: m.Params["layer"]}
	cv := make([][2][]float64, depth)
	if err := results.ReadRows(dir, "class_value", func(r ClassValueRow) error {
		if r.Block < 0 || int(r.Block) >= depth {
			return fmt.Errorf("%s: block %d out of range", dir, r.Block)
		}
		cv[r.Block][0] = append(cv[r.Block][0], r.MaxCos)
		cv[r.Block][1] = append(cv[r.Block][1], r.RandomMaxCos)
		return nil
	}); err != nil {
		return nil, err
	}
	for b := 0; b < depth; b++ {
		var agree, agreeRandom stats.Welford
		for _, c := range perConcept[b] {
			agree.Add(float64(c.hit) / float64(c.n))
			agreeRandom.Add(float64(c.hitRandom) / float64(c.n))
		}
		mb := MemoryBlock{Block: b, Agreement: agree.Mean(), AgreementRandom: agreeRandom.Mean(),
			CLSAgreement: nanIfEmpty(clsAgree[b]), Composition: comp[b].Mean(),
			CorrectMinusIncorrect: math.NaN(), CorrectP: math.NaN(), ClassValueP: math.NaN(),
			ClassValue: stats.Mean(cv[b][0]), ClassValueRandom: stats.Mean(cv[b][1])}
		if permutation > 0 && hasBoth(clsCorrect[b]) {
			mb.CorrectMinusIncorrect, mb.CorrectP, err = stats.PermutationTest(clsVals[b], clsCorrect[b], stats.MeanDiff, permutation, seed+uint64(b))
			if err != nil {
				return nil, err
			}
		}
		if len(cv[b][0]) > 0 {
			if w, err := stats.WilcoxonSignedRank(cv[b][0], cv[b][1], stats.Greater); err == nil {
				mb.ClassValueP = w.P
			}
		}
		rep.Blocks = append(rep.Blocks, mb)
	}
	if err := rep.addValueVectors(dir, depth, uses, tokens); err != nil {
		rep.Notes = append(rep.Notes, fmt.Sprintf("no value-vector table: %v (made by an older vitlens: rerun `vitlens memories`)", err))
	}
	return rep, nil
}

// addValueVectors joins each block's MostUsedMemories most-used memories
// (ties: the lower index) with the classes their values promote.
func (rep *MemoryReport) addValueVectors(dir string, depth int, uses []map[int32]int, tokens []int) error {
	want := make([]map[int32]bool, depth)
	for b := range want {
		ids := make([]int32, 0, len(uses[b]))
		for j := range uses[b] {
			ids = append(ids, j)
		}
		slices.SortFunc(ids, func(x, y int32) int {
			if c := uses[b][y] - uses[b][x]; c != 0 {
				return c
			}
			return int(x - y)
		})
		want[b] = map[int32]bool{}
		for _, j := range ids[:min(MostUsedMemories, len(ids))] {
			want[b][j] = true
		}
	}
	var vs []ValueVector
	err := results.ReadRows(dir, "value_classes", func(r ValueClassRow) error {
		if r.Block < 0 || int(r.Block) >= depth || !want[r.Block][r.Memory] {
			return nil
		}
		b := r.Block
		vs = append(vs, ValueVector{Block: int(b), Memory: int(r.Memory), Uses: uses[b][r.Memory],
			Share:   float64(uses[b][r.Memory]) / float64(tokens[b]),
			Classes: slices.DeleteFunc([]int32{r.Class1, r.Class2, r.Class3, r.Class4, r.Class5}, func(c int32) bool { return c < 0 }),
			Logit:   r.Logit1})
		return nil
	})
	if err != nil {
		return err
	}
	slices.SortFunc(vs, func(x, y ValueVector) int {
		if x.Block != y.Block {
			return x.Block - y.Block
		}
		if x.Uses != y.Uses {
			return y.Uses - x.Uses
		}
		return x.Memory - y.Memory
	})
	rep.Values = vs
	return nil
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func nanIfEmpty(w stats.Welford) float64 {
	if w.Count() == 0 {
		return math.NaN()
	}
	return w.Mean()
}

func hasBoth(v []bool) bool {
	var t, f bool
	for _, x := range v {
		t, f = t || x, f || !x
	}
	return t && f
}

// WriteJSON writes v as indented JSON to dir/name atomically (dir is a
// results folder or an s3:// URL). NaN becomes null.
func WriteJSON(dir, name string, v any) error {
	data, err := json.MarshalIndent(NaNToNull(v), "", "  ")
	if err != nil {
		return err
	}
	return results.PutFile(dir, name, append(data, '\n'))
}
