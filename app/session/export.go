package session

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"strconv"

	"vitlens/vit"
	"vitlens/vit/lens"
	"vitlens/vit/memory"
)

// runs lists the analysis' runs with the names exports use.
func (a *Analysis) runs() []struct {
	name string
	r    *lens.Result
} {
	out := []struct {
		name string
		r    *lens.Result
	}{{"before", a.Base}}
	if a.After != nil {
		out = append(out, struct {
			name string
			r    *lens.Result
		}{"after", a.After})
	}
	return out
}

func writeCSV(rows [][]string) []byte {
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	_ = w.WriteAll(rows) // writing to a bytes.Buffer cannot fail
	return b.Bytes()
}

func ftoa(v float64) string { return strconv.FormatFloat(v, 'g', 6, 64) }

// ReadoutsCSV is the full lens table: one row per run, site, block and token
// (blocks counted from 1, as in the paper's figures).
func (a *Analysis) ReadoutsCSV() []byte { return writeCSV(a.readoutRows()) }

// readoutRows is ReadoutsCSV's table, header first.
func (a *Analysis) readoutRows() [][]string {
	c := a.Model.Model.Config
	head := []string{"run", "site", "block", "token", "label", "target", "rank0", "identifiability", "target_logit"}
	for i := 1; i <= TopK; i++ {
		head = append(head, "top"+strconv.Itoa(i))
	}
	rows := [][]string{head}
	for _, run := range a.runs() {
		for _, s := range vit.AllSites() {
			for b := 0; b < c.Depth; b++ {
				ro := run.r.At(s, b)
				for pos, tok := range run.r.Tokens {
					row := []string{run.name, s.String(), strconv.Itoa(b + 1), strconv.Itoa(tok), TokenLabel(c, tok),
						a.Model.ClassName(run.r.Target), strconv.Itoa(int(ro.Rank[pos])),
						ftoa(lens.Identifiability(int(ro.Rank[pos]), c.Classes)), ftoa(float64(ro.TargetLogit[pos]))}
					for _, k := range ro.TopOf(pos) {
						name := ""
						if k >= 0 {
							name = a.Model.ClassName(int(k))
						}
						row = append(row, name)
					}
					rows = append(rows, row)
				}
			}
		}
	}
	return rows
}

// PredictionsCSV lists the top classes of each run.
func (a *Analysis) PredictionsCSV() []byte {
	rows := [][]string{{"run", "rank", "class", "name", "logit", "probability"}}
	for _, run := range a.runs() {
		for i, s := range a.Model.Top(run.r, TopK) {
			rows = append(rows, []string{run.name, strconv.Itoa(i + 1), strconv.Itoa(s.Class), s.Name,
				ftoa(float64(s.Logit)), ftoa(s.Prob)})
		}
	}
	return writeCSV(rows)
}

// CurveCSV is the identifiability curve of site s for each run.
func (a *Analysis) CurveCSV(s vit.Site) []byte {
	rows := [][]string{{"run", "site", "block", "cls", "image_tokens_mean"}}
	for _, run := range a.runs() {
		cls, img := Curve(run.r, a.Model.Model.Config, s)
		for b := range img {
			cv := ""
			if cls != nil {
				cv = ftoa(cls[b])
			}
			rows = append(rows, []string{run.name, s.String(), strconv.Itoa(b + 1), cv, ftoa(img[b])})
		}
	}
	return writeCSV(rows)
}

// MemoriesCSV lists the top memories of token t in every block, both layers.
func (a *Analysis) MemoriesCSV(t int) ([]byte, error) {
	r := a.Current()
	pos := Position(r, t)
	if pos < 0 {
		return nil, fmt.Errorf("%s was dropped", TokenLabel(a.Model.Model.Config, t))
	}
	head := []string{"block", "layer", "rank", "memory", "head", "coefficient"}
	for i := 1; i <= MemoryClasses; i++ {
		head = append(head, "class"+strconv.Itoa(i))
	}
	rows := [][]string{head}
	for b := 0; b < a.Model.Model.Config.Depth; b++ {
		for _, l := range []memory.Layer{memory.MLP, memory.Attn} {
			mems, err := a.Model.Memories(a.CurrentMemories(), b, l, pos)
			if err != nil {
				return nil, err
			}
			for i, m := range mems {
				h := ""
				if m.Head >= 0 {
					h = strconv.Itoa(m.Head + 1)
				}
				row := []string{strconv.Itoa(b + 1), string(l), strconv.Itoa(i + 1), strconv.Itoa(m.Index), h,
					ftoa(float64(m.Coef))}
				for _, c := range m.Classes {
					row = append(row, a.Model.ClassName(int(c)))
				}
				rows = append(rows, row)
			}
		}
	}
	return writeCSV(rows), nil
}

// Summary is the machine-readable digest the page exposes in its DOM, for
// the end-to-end tests and for anyone scripting the page.
type Summary struct {
	Model       string   `json:"model"`
	Image       string   `json:"image"`
	Backend     string   `json:"backend"`
	TapsBackend string   `json:"taps_backend,omitempty"`
	ElapsedMS   float64  `json:"elapsed_ms"`
	Target      int      `json:"target"`
	Predicted   int      `json:"predicted"`
	Edit        string   `json:"edit,omitempty"`
	Drop        []int    `json:"drop,omitempty"`
	Base        RunJSON  `json:"base"`
	After       *RunJSON `json:"after,omitempty"`
}

// RunJSON is one run's ranks per site: Ranks[site][block][position].
type RunJSON struct {
	Tokens []int                `json:"tokens"`
	Top    []int                `json:"top"`
	Ranks  map[string][][]int32 `json:"ranks"`
}

func runJSON(r *lens.Result, c vit.Config) RunJSON {
	out := RunJSON{Tokens: r.Tokens, Ranks: map[string][][]int32{}}
	idx := make([]int32, min(TopK, len(r.Logits)))
	lens.TopK(idx, r.Logits)
	for _, k := range idx {
		out.Top = append(out.Top, int(k))
	}
	for _, s := range vit.AllSites() {
		for b := 0; b < c.Depth; b++ {
			out.Ranks[s.String()] = append(out.Ranks[s.String()], r.At(s, b).Rank)
		}
	}
	return out
}

// Summary digests the analysis.
func (a *Analysis) Summary() Summary {
	c := a.Model.Model.Config
	s := Summary{Model: a.Model.Name, Image: a.Image.Name, Backend: a.Backend, TapsBackend: a.TapsBackend,
		ElapsedMS: float64(a.Elapsed.Microseconds()) / 1000, Target: a.Base.Target, Predicted: a.Predicted(),
		Edit: string(a.Settings.Edit), Drop: a.Settings.Drop, Base: runJSON(a.Base, c)}
	if a.After != nil {
		r := runJSON(a.After, c)
		s.After = &r
	}
	return s
}

// SummaryJSON is Summary as JSON.
func (a *Analysis) SummaryJSON() []byte {
	b, _ := json.Marshal(a.Summary()) // plain data: cannot fail
	return b
}
