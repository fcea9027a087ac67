package checkpoint

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strings"
	"testing"

	"github.com/nlpodyssey/safetensors"

	"vitlens/vit"
)

// The exporters below write a vit.Model in each family's naming. They are
// spelled out by hand, apart from the loader's tables, so a slip in a table
// cannot cancel itself out in a round trip.

type tensorSet map[string]*vit.Tensor

func (t tensorSet) put(name string, data []float32, shape ...int) {
	t[name] = &vit.Tensor{Shape: shape, Data: append([]float32{}, data...)}
}

func (t tensorSet) lin(name string, l vit.Linear) {
	t.put(name+".weight", l.Weights(), l.Out, l.In)
	if l.B != nil {
		t.put(name+".bias", l.B, l.Out)
	}
}

func (t tensorSet) norm(name string, n vit.Norm) {
	t.put(name+".weight", n.W, len(n.W))
	t.put(name+".bias", n.B, len(n.B))
}

func exportTimm(m *vit.Model) tensorSet {
	c, t := m.Config, tensorSet{}
	t.put("patch_embed.proj.weight", m.Patch.Weights(), c.Dim, c.Channels, c.PatchSize, c.PatchSize)
	t.put("patch_embed.proj.bias", m.Patch.B, c.Dim)
	if c.ClassToken {
		t.put("cls_token", m.ClsToken, 1, 1, c.Dim)
	}
	t.put("pos_embed", m.PosEmbed, 1, c.NumTokens(), c.Dim)
	for i, b := range m.Blocks {
		p := fmt.Sprintf("blocks.%d.", i)
		t.norm(p+"norm1", b.Norm1)
		t.lin(p+"attn.qkv", b.QKV)
		t.lin(p+"attn.proj", b.Proj)
		t.norm(p+"norm2", b.Norm2)
		t.lin(p+"mlp.fc1", b.FC1)
		t.lin(p+"mlp.fc2", b.FC2)
	}
	if c.Pool == vit.PoolMean {
		t.norm("fc_norm", m.Norm)
	} else {
		t.norm("norm", m.Norm)
	}
	t.lin("head", m.Head)
	return t
}

func exportHF(m *vit.Model) tensorSet {
	c, t, d := m.Config, tensorSet{}, m.Config.Dim
	t.put("vit.embeddings.patch_embeddings.projection.weight", m.Patch.Weights(), d, c.Channels, c.PatchSize, c.PatchSize)
	t.put("vit.embeddings.patch_embeddings.projection.bias", m.Patch.B, d)
	t.put("vit.embeddings.cls_token", m.ClsToken, 1, 1, d)
	t.put("vit.embeddings.position_embeddings", m.PosEmbed, 1, c.NumTokens(), d)
	for i, b := range m.Blocks {
		p := fmt.Sprintf("vit.encoder.layer.%d.", i)
		t.norm(p+"layernorm_before", b.Norm1)
		for j, s := range []string{"query", "key", "value"} {
			t.put(p+"attention.attention."+s+".weight", b.QKV.Weights()[j*d*d:(j+1)*d*d], d, d)
			if b.QKV.B != nil {
				t.put(p+"attention.attention."+s+".bias", b.QKV.B[j*d:(j+1)*d], d)
			}
		}
		t.lin(p+"attention.output.dense", b.Proj)
		t.norm(p+"layernorm_after", b.Norm2)
		t.lin(p+"intermediate.dense", b.FC1)
		t.lin(p+"output.dense", b.FC2)
	}
	t.norm("vit.layernorm", m.Norm)
	t.lin("classifier", m.Head)
	return t
}

func exportTorchvision(m *vit.Model) tensorSet {
	c, t := m.Config, tensorSet{}
	t.put("conv_proj.weight", m.Patch.Weights(), c.Dim, c.Channels, c.PatchSize, c.PatchSize)
	t.put("conv_proj.bias", m.Patch.B, c.Dim)
	t.put("class_token", m.ClsToken, 1, 1, c.Dim)
	t.put("encoder.pos_embedding", m.PosEmbed, 1, c.NumTokens(), c.Dim)
	for i, b := range m.Blocks {
		p := fmt.Sprintf("encoder.layers.encoder_layer_%d.", i)
		t.norm(p+"ln_1", b.Norm1)
		t.put(p+"self_attention.in_proj_weight", b.QKV.Weights(), 3*c.Dim, c.Dim)
		t.put(p+"self_attention.in_proj_bias", b.QKV.B, 3*c.Dim)
		t.lin(p+"self_attention.out_proj", b.Proj)
		t.norm(p+"ln_2", b.Norm2)
		t.lin(p+"mlp.0", b.FC1)
		t.lin(p+"mlp.3", b.FC2)
	}
	t.norm("encoder.ln", m.Norm)
	t.lin("heads.head", m.Head)
	return t
}

var exporters = map[Family]func(*vit.Model) tensorSet{Timm: exportTimm, HF: exportHF, Torchvision: exportTorchvision}

// tinyConfig is a small standard ViT; dim 64 makes the dim/64 heads default
// hold.
func tinyConfig() vit.Config {
	return vit.Config{ImageSize: 16, PatchSize: 4, Channels: 3, Dim: 64, Depth: 2, Heads: 1, MLPDim: 96,
		Classes: 5, QKVBias: true, LNEps: 1e-6, ClassToken: true, Pool: vit.PoolCLS}
}

func randomModel(t testing.TB, c vit.Config) *vit.Model {
	t.Helper()
	m, err := vit.NewRandom(c, 7)
	if err != nil {
		t.Fatal(err)
	}
	unpack(m)
	// Give the zero biases and unit norms values, so a swapped tensor shows.
	i, w := 0, weights(m)
	names := make([]string, 0, len(w))
	for n := range w {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		s := w[n]
		for j := range s {
			s[j] += float32(math.Sin(float64(i))) * 0.01
			i++
		}
	}
	return m
}

// unpack gives every Linear of m its W in PyTorch layout again, so that
// tests can edit the weights through weights(m) in place.
func unpack(m *vit.Model) {
	m.Patch, m.Head, m.HeadCLS, m.HeadDist = m.Patch.Unpacked(), m.Head.Unpacked(), m.HeadCLS.Unpacked(), m.HeadDist.Unpacked()
	for i := range m.Blocks {
		b := &m.Blocks[i]
		b.QKV, b.Proj, b.FC1, b.FC2 = b.QKV.Unpacked(), b.Proj.Unpacked(), b.FC1.Unpacked(), b.FC2.Unpacked()
	}
}

// weights names every weight slice of a model, for comparisons (those of a
// packed Linear are copies).
func weights(m *vit.Model) map[string][]float32 {
	w := map[string][]float32{
		"patch.W": m.Patch.Weights(), "patch.B": m.Patch.B, "cls": m.ClsToken, "pos": m.PosEmbed,
		"norm.W": m.Norm.W, "norm.B": m.Norm.B, "head.W": m.Head.Weights(), "head.B": m.Head.B,
	}
	for i, b := range m.Blocks {
		p := fmt.Sprintf("blocks.%d.", i)
		for name, s := range map[string][]float32{
			"norm1.W": b.Norm1.W, "norm1.B": b.Norm1.B, "qkv.W": b.QKV.Weights(), "qkv.B": b.QKV.B,
			"proj.W": b.Proj.Weights(), "proj.B": b.Proj.B, "norm2.W": b.Norm2.W, "norm2.B": b.Norm2.B,
			"fc1.W": b.FC1.Weights(), "fc1.B": b.FC1.B, "fc2.W": b.FC2.Weights(), "fc2.B": b.FC2.B,
		} {
			w[p+name] = s
		}
	}
	return w
}

// sameWeights reports the first weight that differs by more than tol.
func sameWeights(t *testing.T, label string, got, want *vit.Model, tol float64) {
	t.Helper()
	gw, ww := weights(got), weights(want)
	names := make([]string, 0, len(ww))
	for n := range ww {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		g, w := gw[n], ww[n]
		if len(g) != len(w) || (g == nil) != (w == nil) {
			t.Errorf("%s: %s has %d values (nil %v), want %d (nil %v)", label, n, len(g), g == nil, len(w), w == nil)
			continue
		}
		for i := range w {
			if math.Abs(float64(g[i]-w[i])) > tol {
				t.Errorf("%s: %s[%d] = %g, want %g", label, n, i, g[i], w[i])
				break
			}
		}
	}
}

// encode writes float32 values in a safetensors dtype. F16/BF16 truncate,
// which is exact for the values the tests use (few significant bits).
func encode(dtype safetensors.DType, v []float32) []byte {
	var b []byte
	for _, x := range v {
		bits := math.Float32bits(x)
		switch dtype {
		case safetensors.F32:
			b = binary.LittleEndian.AppendUint32(b, bits)
		case safetensors.F64:
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(float64(x)))
		case safetensors.BF16:
			b = binary.LittleEndian.AppendUint16(b, uint16(bits>>16))
		case safetensors.F16:
			var h uint16
			if x != 0 { // normal numbers only
				exp := int(bits>>23&0xff) - 127 + 15
				h = uint16(bits>>31)<<15 | uint16(exp)<<10 | uint16(bits>>13&0x3ff)
			}
			b = binary.LittleEndian.AppendUint16(b, h)
		}
	}
	return b
}

// safetensorsFile serializes tensors with the safetensors library.
func safetensorsFile(t testing.TB, ts tensorSet, meta map[string]string, dtype safetensors.DType) []byte {
	t.Helper()
	views := map[string]safetensors.TensorView{}
	for name, x := range ts {
		shape := make([]uint64, len(x.Shape))
		for i, d := range x.Shape {
			shape[i] = uint64(d)
		}
		v, err := safetensors.NewTensorView(dtype, shape, encode(dtype, x.Data))
		if err != nil {
			t.Fatal(name, err)
		}
		views[name] = v
	}
	b, err := safetensors.Serialize(views, meta)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rawSafetensors writes a header by hand (for layouts the library refuses to
// write) followed by n zero bytes.
func rawSafetensors(header map[string]any, n int) []byte {
	h, _ := json.Marshal(header)
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(h)))
	return append(append(b, h...), make([]byte, n)...)
}

func configJSON(c vit.Config) string {
	b, _ := json.Marshal(c)
	return string(b)
}

func mustContain(t *testing.T, err error, subs ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want one containing %q", subs)
	}
	for _, s := range subs {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not contain %q", err, s)
		}
	}
}
