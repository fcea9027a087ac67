package session

import (
	"fmt"
	"strconv"

	"vitlens/vit/lens"
)

// AttentionRows is where one token attends in one run: every block's and
// head's weights over the run's sequence. A run's whole attention (heads ×
// n × n per block: 22 MB for a B/16, growing with the square of the
// sequence) stays where it was computed; the page holds the rows of the
// tokens it shows (the engine's KindAttention).
type AttentionRows struct {
	Token int // the querying token
	// Keys are the run's tokens, in sequence order: the columns of W.
	Keys         []int
	Depth, Heads int
	W            []float32 // depth × heads × len(Keys)
}

// AttentionOf reads token t's rows out of run r's attention maps.
func AttentionOf(r *lens.Result, t int) (*AttentionRows, error) {
	tr := r.Trace
	if tr == nil || tr.AttnProbs == nil {
		return nil, fmt.Errorf("this run kept no attention maps")
	}
	pos := Position(r, t)
	if pos < 0 {
		return nil, fmt.Errorf("token %d was dropped", t)
	}
	out := &AttentionRows{Token: t, Keys: r.Tokens, Depth: len(tr.AttnProbs)}
	n := len(r.Tokens)
	for b, p := range tr.AttnProbs { // heads × n × n
		if p == nil || len(p.Shape) != 3 || p.Shape[1] != n || p.Shape[2] != n {
			return nil, fmt.Errorf("no attention maps for block %d", b)
		}
		if b == 0 {
			out.Heads = p.Shape[0]
			out.W = make([]float32, 0, out.Depth*out.Heads*n)
		} else if p.Shape[0] != out.Heads {
			return nil, fmt.Errorf("block %d has %d attention heads, block 1 %d", b, p.Shape[0], out.Heads)
		}
		for h := range out.Heads {
			out.W = append(out.W, p.Data[(h*n+pos)*n:(h*n+pos+1)*n]...)
		}
	}
	return out, nil
}

// Block is block b's rows, one per head, each over Keys.
func (a *AttentionRows) Block(b int) [][]float32 {
	n := len(a.Keys)
	out := make([][]float32, a.Heads)
	for h := range out {
		at := (b*a.Heads + h) * n
		out[h] = a.W[at : at+n]
	}
	return out
}

// Check says whether the rows are whole: a malformed engine answer is an
// error, not a panic in a view.
func (a *AttentionRows) Check() error {
	if a == nil || a.Depth < 0 || a.Heads < 0 || len(a.W) != a.Depth*a.Heads*len(a.Keys) {
		return fmt.Errorf("malformed attention rows")
	}
	return nil
}

// AttentionCSV lists where the rows' token attends, per block and head.
func (a *Analysis) AttentionCSV(rows *AttentionRows) ([]byte, error) {
	if err := rows.Check(); err != nil {
		return nil, err
	}
	c := a.Model.Model.Config
	out := [][]string{{"block", "head", "key_token", "key_label", "weight"}}
	for b := range rows.Depth {
		for h, w := range rows.Block(b) {
			for kp, v := range w {
				tok := rows.Keys[kp]
				out = append(out, []string{strconv.Itoa(b + 1), strconv.Itoa(h + 1), strconv.Itoa(tok),
					TokenLabel(c, tok), ftoa(float64(v))})
			}
		}
	}
	return writeCSV(out), nil
}
