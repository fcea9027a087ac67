package probe

import (
	"fmt"
	"io"
	"math"
	"slices"

	"vitlens/vit"
	"vitlens/vit/results"
)

// TokenStat is the test readout of one probe (block, site, token) and of
// the lens at the same place.
type TokenStat struct {
	Block        int     `json:"block"`
	Site         string  `json:"site"`
	Token        int     `json:"token"`
	Accuracy     float64 `json:"accuracy"`      // probe top-1
	MeanRank     float64 `json:"mean_rank"`     // probe, 0-based
	LensAccuracy float64 `json:"lens_accuracy"` // class projection top-1 (rank 0)
	LensMeanRank float64 `json:"lens_mean_rank"`
}

// LayerStat averages a (block, site) over tokens: image tokens and [CLS]
// apart, as the paper's figure drops the [CLS] probe.
type LayerStat struct {
	Block             int     `json:"block"`
	Site              string  `json:"site"`
	ImageAccuracy     float64 `json:"image_accuracy"`
	CLSAccuracy       float64 `json:"cls_accuracy"`
	LensImageAccuracy float64 `json:"lens_image_accuracy"`
	LensCLSAccuracy   float64 `json:"lens_cls_accuracy"`
}

// Report is the probe run's summary.
type Report struct {
	Images  int         `json:"images"`
	Classes int         `json:"classes"`
	Layers  []LayerStat `json:"layers"`
	Tokens  []TokenStat `json:"tokens"`
}

// Summarize reads a probe results folder.
func Summarize(dir string) (*Report, error) {
	m, err := results.ReadManifest(dir)
	if err != nil {
		return nil, err
	}
	c := m.Config
	type key struct {
		block int
		site  string
		token int
	}
	type acc struct{ n, hit, lensHit, rank, lensRank float64 }
	cells := map[key]*acc{}
	images := map[int32]bool{}
	err = results.ReadRows(dir, "probe", func(r Row) error {
		if r.Block < 0 || int(r.Block) >= c.Depth || r.Token < 0 || int(r.Token) >= c.NumTokens() {
			return fmt.Errorf("%s: row out of range: block %d token %d", dir, r.Block, r.Token)
		}
		k := key{int(r.Block), r.Site, int(r.Token)}
		a := cells[k]
		if a == nil {
			a = &acc{}
			cells[k] = a
		}
		a.n++
		a.hit += b2f(r.Rank == 0)
		a.lensHit += b2f(r.LensRank == 0)
		a.rank += float64(r.Rank)
		a.lensRank += float64(r.LensRank)
		images[r.Image] = true
		return nil
	})
	if err != nil {
		return nil, err
	}
	rep := &Report{Images: len(images), Classes: c.Classes}
	keys := make([]key, 0, len(cells))
	for k := range cells {
		keys = append(keys, k)
	}
	siteOrder := func(s string) int {
		v, err := vit.ParseSite(s)
		if err != nil {
			return 99
		}
		return int(v)
	}
	slices.SortFunc(keys, func(a, b key) int {
		if d := siteOrder(a.site) - siteOrder(b.site); d != 0 {
			return d
		}
		if a.block != b.block {
			return a.block - b.block
		}
		return a.token - b.token
	})
	type layerKey struct {
		block int
		site  string
	}
	layerAcc := map[layerKey]*[4][2]float64{} // [probe img, probe cls, lens img, lens cls][sum, count]
	var layerKeys []layerKey
	for _, k := range keys {
		a := cells[k]
		rep.Tokens = append(rep.Tokens, TokenStat{Block: k.block, Site: k.site, Token: k.token, Accuracy: a.hit / a.n,
			MeanRank: a.rank / a.n, LensAccuracy: a.lensHit / a.n, LensMeanRank: a.lensRank / a.n})
		kind := c.TokenKind(k.token)
		if kind != vit.KindCLS && kind != vit.KindPatch {
			continue // a distillation token or register: in the token table only
		}
		lk := layerKey{k.block, k.site}
		la := layerAcc[lk]
		if la == nil {
			la = &[4][2]float64{}
			layerAcc[lk] = la
			layerKeys = append(layerKeys, lk)
		}
		i := 0
		if kind == vit.KindCLS {
			i = 1
		}
		la[i][0] += a.hit / a.n
		la[i][1]++
		la[i+2][0] += a.lensHit / a.n
		la[i+2][1]++
	}
	mean := func(v [2]float64) float64 {
		if v[1] == 0 {
			return math.NaN()
		}
		return v[0] / v[1]
	}
	for _, lk := range layerKeys {
		la := layerAcc[lk]
		rep.Layers = append(rep.Layers, LayerStat{Block: lk.block, Site: lk.site, ImageAccuracy: mean(la[0]),
			CLSAccuracy: mean(la[1]), LensImageAccuracy: mean(la[2]), LensCLSAccuracy: mean(la[3])})
	}
	return rep, nil
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// TokenRankSums returns, per test image index, the probe rank of each image
// token summed over the blocks at the hs site: the ordering of the removal
// test's probe source (ascending sum = most important first).
func TokenRankSums(dir string) (map[int][]float64, error) {
	m, err := results.ReadManifest(dir)
	if err != nil {
		return nil, err
	}
	c := m.Config
	first, P := c.FirstImageToken(), c.NumPatches()
	sums := map[int][]float64{}
	blocks := map[int]map[int32]bool{}
	err = results.ReadRows(dir, "probe", func(r Row) error {
		if r.Site != vit.SiteHS.String() {
			return nil
		}
		p := int(r.Token) - first
		if p < 0 || p >= P {
			return nil
		}
		s := sums[int(r.Image)]
		if s == nil {
			s = make([]float64, P)
			sums[int(r.Image)] = s
			blocks[int(r.Image)] = map[int32]bool{}
		}
		s[p] += float64(r.Rank)
		blocks[int(r.Image)][r.Block] = true
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(sums) == 0 {
		return nil, fmt.Errorf("%s: no hs probes (run vitlens probe with the hs site)", dir)
	}
	for img, b := range blocks {
		if len(b) != c.Depth {
			return nil, fmt.Errorf("%s: image %d has hs probes for %d of %d blocks", dir, img, len(b), c.Depth)
		}
	}
	return sums, nil
}

// WriteText prints the per-layer table.
func (r *Report) WriteText(w io.Writer) {
	fmt.Fprintf(w, "linear probes: %d test images, %d classes (top-1 accuracy, image tokens / [CLS])\n", r.Images, r.Classes)
	fmt.Fprintln(w, "block\tsite\tprobe_img\tprobe_cls\tlens_img\tlens_cls")
	f := func(v float64) string {
		if math.IsNaN(v) {
			return "-"
		}
		return fmt.Sprintf("%.3f", v)
	}
	for _, l := range r.Layers {
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\n", l.Block+1, l.Site, f(l.ImageAccuracy), f(l.CLSAccuracy), f(l.LensImageAccuracy), f(l.LensCLSAccuracy))
	}
}
