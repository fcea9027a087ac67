package experiment

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"

	"vitlens/vit"
	"vitlens/vit/analysis"
	"vitlens/vit/results"
	"vitlens/vit/stats"
)

// errStop ends a ReadRows scan early without being an error.
var errStop = errors.New("stop")

// SummaryOptions control Summarize.
type SummaryOptions struct {
	Random      string // results folder of a random-model extract over the same images
	Permutation int    // rounds of the class-vs-context test (300 in the paper)
	Seed        uint64
}

// Summarize reads an extract (or perturbation) results folder image by image
// and computes the paper's identifiability statistics.
func Summarize(dir string, opt SummaryOptions) (*analysis.Report, error) {
	m, err := results.ReadManifest(dir)
	if err != nil {
		return nil, err
	}
	sum, err := summarizeDir(dir, m, opt.Random != "")
	if err != nil {
		return nil, err
	}
	fo := analysis.Options{Permutation: opt.Permutation, Seed: opt.Seed}
	if opt.Random != "" {
		rm, err := results.ReadManifest(opt.Random)
		if err != nil {
			return nil, err
		}
		if rm.Dataset != m.Dataset || rm.Selection != m.Selection || rm.Total != m.Total || rm.Config != m.Config {
			return nil, fmt.Errorf("%s and %s are not the same images and architecture: the paired test needs both", dir, opt.Random)
		}
		if fo.Random, err = summarizeDir(opt.Random, rm, true); err != nil {
			return nil, err
		}
	}
	return sum.Finish(fo)
}

func summarizeDir(dir string, m results.Manifest, keepPairs bool) (*analysis.Summary, error) {
	c := m.Config
	correct := map[int32]bool{}
	if err := results.ReadRows(dir, "images", func(r ImageRow) error {
		correct[r.Image] = r.Correct
		return nil
	}); err != nil {
		return nil, err
	}
	sum := analysis.NewSummary(c.Classes, c.Depth, keepPairs)
	var cur *analysis.Image
	var pos map[int32]int // token → position of the current image
	flush := func() error {
		if cur == nil {
			return nil
		}
		return sum.Add(cur)
	}
	err := results.ReadRows(dir, "ranks", func(r RankRow) error {
		if cur == nil || int32(cur.Image) != r.Image {
			if err := flush(); err != nil {
				return err
			}
			cur = &analysis.Image{Image: int(r.Image), Label: int(r.Label), Correct: correct[r.Image], HasCLS: c.ClassToken}
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
}

// SummarizeMemories reads a memories results folder.
func SummarizeMemories(dir string, permutation int, seed uint64) (*MemoryReport, error) {
	m, err := results.ReadManifest(dir)
	if err != nil {
		return nil, err
	}
	depth := m.Config.Depth
	type concept struct{ hit, hitRandom, n int }
	perConcept := make([]map[int32]*concept, depth)
	comp := make([]stats.Welford, depth)
	clsAgree := make([]stats.Welford, depth)
	clsVals := make([][]float64, depth) // per image [CLS] agreement
	clsCorrect := make([][]bool, depth)
	for b := range perConcept {
		perConcept[b] = map[int32]*concept{}
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
	return rep, nil
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

// WriteJSON writes v as indented JSON to dir/name atomically enough for a
// summary (write temp, rename). NaN becomes null.
func WriteJSON(dir, name string, v any) error {
	data, err := json.MarshalIndent(NaNToNull(v), "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, "."+name+".tmp")
	if err := os.WriteFile(tmp, append(data, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dir, name))
}
