package figures

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"

	"vitlens/vit"
	"vitlens/vit/analysis"
	"vitlens/vit/dataset"
	"vitlens/vit/dla"
	"vitlens/vit/experiment"
	"vitlens/vit/explain/batch"
	"vitlens/vit/probe"
	"vitlens/vit/results"
	"vitlens/vit/tunedlens"
)

// Run is one results folder and what the figures need of it.
type Run struct {
	Dir      string
	Label    string // short name for legends and file names
	Manifest results.Manifest
	Classes  []string // class names when the dataset gives them

	// extract, perturb-attn, perturb-tokens
	Summary *analysis.Report
	Ident   *identHist
	// memories
	Memory     *experiment.MemoryReport
	ClassValue [][2][]float64 // [block][model, random] best cosine per class
	KeyValue   [][][2]float64 // [block][concept] agreement rate, random-class rate
	// removal
	Removal *batch.RemovalReport
	// probe
	Probe *probe.Report
	// explain
	Explained []batch.ImageRow
	// tune-lens (a folder with tuned_lens.json, no manifest)
	TunedLens *tunedlens.Report
	// dla (a folder with dla.json, no manifest)
	DLA *dla.Summary

	Notes []string // what could not be read, for the report
}

// Kind is the experiment that made the folder.
func (r *Run) Kind() string { return r.Manifest.Experiment }

// LoadOptions tune Load.
type LoadOptions struct {
	// Permutation rounds for summaries computed here (when the folder has no
	// summary.json); 0 skips the permutation tests (no stars).
	Permutation int
}

// Load reads a results folder.
func Load(dir string, opt LoadOptions) (*Run, error) {
	if tl, err := loadTunedLens(dir); tl != nil || err != nil {
		return tl, err
	}
	if d, err := loadDLA(dir); d != nil || err != nil {
		return d, err
	}
	m, err := results.ReadManifest(dir)
	if err != nil {
		return nil, fmt.Errorf("%s is not a vitlens results folder: %w", dir, err)
	}
	r := &Run{Dir: dir, Manifest: m, Label: label(m)}
	r.Classes = ClassNames(m)
	switch m.Experiment {
	case "extract", "perturb-attn", "perturb-tokens":
		err = r.loadExtract(opt)
	case "memories":
		err = r.loadMemories(opt)
	case "removal":
		r.Removal, err = batch.SummarizeRemoval(dir)
	case "probe":
		r.Probe, err = probe.Summarize(dir)
	case "explain":
		err = results.ReadRows(dir, "images", func(row batch.ImageRow) error {
			r.Explained = append(r.Explained, row)
			return nil
		})
	default:
		r.Notes = append(r.Notes, fmt.Sprintf("%s: experiment %q has no figures", dir, m.Experiment))
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	return r, nil
}

// label names a run by its model file (or the demo) and what varies.
func label(m results.Manifest) string {
	model := strings.TrimPrefix(m.ModelPath, "demo:")
	model = strings.TrimSuffix(filepath.Base(model), filepath.Ext(model))
	if model == "" || model == "." {
		model = "model"
	}
	if m.Seed != nil {
		model += fmt.Sprintf("-random%d", *m.Seed)
	}
	switch m.Experiment {
	case "perturb-attn":
		model += "-" + m.Params["mode"]
	case "perturb-tokens":
		model += "-no_" + m.Params["drop"]
	case "memories":
		model += "-" + m.Params["layer"]
	}
	if m.Params["double_softmax"] == "true" {
		model += "-double_softmax"
	}
	// Labels become file names: keep them portable.
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' {
			return r
		}
		return '-'
	}, model)
}

// ClassNames returns the class names of a run's dataset when it gives them
// (Fashion-MNIST), nil otherwise.
func ClassNames(m results.Manifest) []string {
	if strings.HasPrefix(m.Dataset, "fmnist") {
		if ds, err := dataset.Open("fmnist", m.DatasetRoot, dataset.Options{}); err == nil {
			return ds.Classes()
		}
	}
	return nil
}

// ClassName returns the name of class c, or its index.
func (r *Run) ClassName(c int) string {
	if c >= 0 && c < len(r.Classes) {
		return r.Classes[c]
	}
	return fmt.Sprint(c)
}

func (r *Run) loadExtract(opt LoadOptions) error {
	if !readSummary(r.Dir, &r.Summary) {
		rep, err := experiment.Summarize(r.Dir, experiment.SummaryOptions{Permutation: opt.Permutation})
		if err != nil {
			return err
		}
		r.Summary = rep
		r.Notes = append(r.Notes, fmt.Sprintf("%s has no summary.json: summarised here without the random-model test (run `vitlens summary --random RANDOM_RUN %s` for the significance stars)", r.Dir, r.Dir))
	}
	h, err := readIdent(r.Dir, r.Manifest)
	if err != nil {
		return err
	}
	r.Ident = h
	return nil
}

func (r *Run) loadMemories(opt LoadOptions) error {
	if !readSummary(r.Dir, &r.Memory) {
		rep, err := experiment.SummarizeMemories(r.Dir, opt.Permutation, 0)
		if err != nil {
			return err
		}
		r.Memory = rep
	}
	depth := r.Manifest.Config.Depth
	r.ClassValue = make([][2][]float64, depth)
	if err := results.ReadRows(r.Dir, "class_value", func(row experiment.ClassValueRow) error {
		if row.Block >= 0 && int(row.Block) < depth {
			b := &r.ClassValue[row.Block]
			b[0] = append(b[0], row.MaxCos)
			b[1] = append(b[1], row.RandomMaxCos)
		}
		return nil
	}); err != nil {
		return err
	}
	type cnt struct{ hit, rnd, n int }
	per := make([]map[int32]*cnt, depth)
	var order [][]int32
	for b := range per {
		per[b] = map[int32]*cnt{}
		order = append(order, nil)
	}
	if err := results.ReadRows(r.Dir, "memories", func(row experiment.MemoryRow) error {
		if row.Block < 0 || int(row.Block) >= depth {
			return nil
		}
		c := per[row.Block][row.Label]
		if c == nil {
			c = &cnt{}
			per[row.Block][row.Label] = c
			order[row.Block] = append(order[row.Block], row.Label)
		}
		c.n++
		if row.Agree {
			c.hit++
		}
		if row.AgreeRandom {
			c.rnd++
		}
		return nil
	}); err != nil {
		return err
	}
	r.KeyValue = make([][][2]float64, depth)
	for b := range per {
		for _, l := range order[b] {
			c := per[b][l]
			r.KeyValue[b] = append(r.KeyValue[b], [2]float64{float64(c.hit) / float64(c.n), float64(c.rnd) / float64(c.n)})
		}
	}
	return nil
}

// readSummary decodes dir/summary.json into *dst when it exists, with JSON
// nulls (NaN in the writer) back to NaN.
func readSummary[T any](dir string, dst **T) bool {
	data, err := os.ReadFile(filepath.Join(dir, "summary.json"))
	if err != nil {
		return false
	}
	v := new(T)
	if err := decodeNaN(data, v); err != nil {
		return false
	}
	*dst = v
	return true
}

// decodeNaN unmarshals JSON into v like encoding/json, except that null
// becomes NaN in float fields (experiment.WriteJSON writes NaN as null).
func decodeNaN(data []byte, v any) error {
	var tree any
	if err := json.Unmarshal(data, &tree); err != nil {
		return err
	}
	return assign(reflect.ValueOf(v).Elem(), tree)
}

func assign(dst reflect.Value, src any) error {
	switch dst.Kind() {
	case reflect.Float32, reflect.Float64:
		f, ok := src.(float64)
		if !ok {
			f = math.NaN()
		}
		dst.SetFloat(f)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		if f, ok := src.(float64); ok {
			dst.SetInt(int64(f))
		}
	case reflect.String:
		if s, ok := src.(string); ok {
			dst.SetString(s)
		}
	case reflect.Bool:
		if b, ok := src.(bool); ok {
			dst.SetBool(b)
		}
	case reflect.Slice:
		arr, ok := src.([]any)
		if !ok {
			return nil
		}
		s := reflect.MakeSlice(dst.Type(), len(arr), len(arr))
		for i, x := range arr {
			if err := assign(s.Index(i), x); err != nil {
				return err
			}
		}
		dst.Set(s)
	case reflect.Pointer:
		if src == nil {
			return nil
		}
		p := reflect.New(dst.Type().Elem())
		if err := assign(p.Elem(), src); err != nil {
			return err
		}
		dst.Set(p)
	case reflect.Struct:
		obj, ok := src.(map[string]any)
		if !ok {
			return nil
		}
		t := dst.Type()
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if !f.IsExported() {
				continue
			}
			name := f.Name
			if tag := strings.Split(f.Tag.Get("json"), ",")[0]; tag != "" {
				name = tag
			}
			x, ok := obj[name]
			if !ok {
				// NaNToNull writes untagged fields under their Go name.
				if dst.Field(i).Kind() == reflect.Float64 || dst.Field(i).Kind() == reflect.Float32 {
					dst.Field(i).SetFloat(math.NaN())
				}
				continue
			}
			if err := assign(dst.Field(i), x); err != nil {
				return err
			}
		}
	default:
		raw, err := json.Marshal(src)
		if err != nil {
			return err
		}
		return json.Unmarshal(raw, dst.Addr().Interface())
	}
	return nil
}

// identHist holds, per block, histograms of the 0-based rank of the true
// class at the hs site for token groups: ranks take only C values, so box
// plot statistics are exact.
type identHist struct {
	classes int
	// [group][block][rank] counts; groups: [CLS], image tokens,
	// class-labelled and context-labelled image tokens.
	counts [4][][]int64
}

const (
	groupCLS = iota
	groupImage
	groupClass
	groupContext
)

func readIdent(dir string, m results.Manifest) (*identHist, error) {
	c := m.Config
	h := &identHist{classes: c.Classes}
	for g := range h.counts {
		h.counts[g] = make([][]int64, c.Depth)
		for b := range h.counts[g] {
			h.counts[g][b] = make([]int64, c.Classes)
		}
	}
	err := results.ReadRows(dir, "ranks", func(r experiment.RankRow) error {
		if r.Site != "hs" || r.Block < 0 || int(r.Block) >= c.Depth || r.Rank < 0 || int(r.Rank) >= c.Classes {
			return nil
		}
		switch c.TokenKind(int(r.Token)) {
		case vit.KindCLS:
			h.counts[groupCLS][r.Block][r.Rank]++
			return nil
		case vit.KindDist, vit.KindRegister:
			return nil // not an image token
		}
		h.counts[groupImage][r.Block][r.Rank]++
		switch r.PatchLabel {
		case 1:
			h.counts[groupClass][r.Block][r.Rank]++
		case 0:
			h.counts[groupContext][r.Block][r.Rank]++
		}
		return nil
	})
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return h, err
}

// boxStats are a box plot's numbers of identifiability r = 1 − rank/C
// (Tukey whiskers at 1.5 IQR, as seaborn draws them).
type boxStats struct {
	n                                    int64
	q1, median, q3, adjLow, adjHigh, avg float64
}

// box computes the statistics of one group and block; n == 0 when empty.
func (h *identHist) box(group, block int) boxStats {
	counts := h.counts[group][block]
	C := float64(h.classes)
	// Values in ascending order of r are ranks in descending order.
	var n int64
	var sum float64
	for rank, k := range counts {
		n += k
		sum += float64(k) * (1 - float64(rank)/C)
	}
	if n == 0 {
		return boxStats{}
	}
	at := func(i int64) float64 { // the i-th smallest r (0-based)
		for rank := len(counts) - 1; rank >= 0; rank-- {
			if i < counts[rank] {
				return 1 - float64(rank)/C
			}
			i -= counts[rank]
		}
		return 1
	}
	quantile := func(q float64) float64 { // numpy's linear interpolation
		pos := q * float64(n-1)
		lo := int64(math.Floor(pos))
		hi := min(lo+1, n-1)
		f := pos - float64(lo)
		return at(lo)*(1-f) + at(hi)*f
	}
	s := boxStats{n: n, q1: quantile(0.25), median: quantile(0.5), q3: quantile(0.75), avg: sum / float64(n)}
	iqr := s.q3 - s.q1
	s.adjLow, s.adjHigh = s.q1, s.q3
	for rank := len(counts) - 1; rank >= 0; rank-- { // ascending r
		if r := 1 - float64(rank)/C; counts[rank] > 0 && r >= s.q1-1.5*iqr {
			s.adjLow = r
			break
		}
	}
	for rank := range counts { // descending r
		if r := 1 - float64(rank)/C; counts[rank] > 0 && r <= s.q3+1.5*iqr {
			s.adjHigh = r
			break
		}
	}
	return s
}
