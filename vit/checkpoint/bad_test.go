package checkpoint

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"slices"
	"testing"

	"github.com/nlpodyssey/safetensors"

	"vitlens/vit"
)

// validFile is a small timm safetensors file that loads.
func validFile(t testing.TB, edit func(tensorSet)) []byte {
	m := randomModel(t, tinyConfig())
	ts := exportTimm(m)
	if edit != nil {
		edit(ts)
	}
	return safetensorsFile(t, ts, nil, safetensors.F32)
}

func zipFile(t *testing.T, files map[string]string) []byte {
	var buf bytes.Buffer
	w := zip.NewWriter(&buf)
	for name, body := range files {
		f, err := w.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		f.Write([]byte(body))
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// Every bad input gives an error that names the file and the problem.
func TestBadInputs(t *testing.T) {
	good := validFile(t, nil)
	tensor := func(dtype string, shape []int, begin, end int) map[string]any {
		return map[string]any{"dtype": dtype, "shape": shape, "data_offsets": []int{begin, end}}
	}
	pth, err := os.ReadFile("testdata/timm_wrapped.pth")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		file []byte
		want string
	}{
		{"empty", nil, "empty file"},
		{"png", []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"), "not a checkpoint (a PNG image"},
		{"json", []byte(`{"hidden_size": 768}`), "JSON text"},
		{"too short.safetensors", []byte{1, 2, 3}, "too short"},
		{"truncated", good[:len(good)-100], "file truncated"},
		{"truncated header", good[:40], "runs beyond the end of the file"},
		{"header length beyond file", append(binary.LittleEndian.AppendUint64(nil, 1<<40), good[8:]...), "header length 1099511627776 runs beyond the end of the file"},
		{"header not json", append(binary.LittleEndian.AppendUint64(nil, 4), []byte("{abc")...), "not a JSON object"},
		{"overlapping offsets", rawSafetensors(map[string]any{"a": tensor("F32", []int{4}, 0, 16), "b": tensor("F32", []int{4}, 8, 24)}, 24), `tensors "a" and "b" overlap`},
		{"out-of-range offsets", rawSafetensors(map[string]any{"a": tensor("F32", []int{4}, 0, 16)}, 8), `tensor "a": data_offsets [0, 16] lie beyond the 8-byte data section`},
		{"backwards offsets", rawSafetensors(map[string]any{"a": tensor("F32", []int{0}, 8, 0)}, 8), "run backwards"},
		{"gap", rawSafetensors(map[string]any{"a": tensor("F32", []int{1}, 4, 8)}, 8), "bytes 0..4 (before tensor \"a\") belong to no tensor"},
		{"trailing bytes", rawSafetensors(map[string]any{"a": tensor("F32", []int{1}, 0, 4)}, 8), "4 bytes after the last tensor"},
		{"unknown dtype", rawSafetensors(map[string]any{"a": tensor("F8_E4M3", []int{4}, 0, 4)}, 4), `tensor "a" has unknown dtype "F8_E4M3"`},
		{"shape size mismatch", rawSafetensors(map[string]any{"a": tensor("F32", []int{5}, 0, 16)}, 16), `tensor "a": F32 [5] needs 20 bytes but data_offsets [0, 16] hold 16`},
		{"huge shape", rawSafetensors(map[string]any{"a": tensor("F32", []int{1 << 40, 1 << 40}, 0, 16)}, 16), "impossible shape"},
		{"extra header key", rawSafetensors(map[string]any{"a": map[string]any{"dtype": "F32", "shape": []int{}, "data_offsets": []int{0, 4}, "x": 1}}, 4), "bad header entry"},
		{"bad metadata", rawSafetensors(map[string]any{"__metadata__": map[string]any{"n": 1}}, 0), "__metadata__ must map strings to strings"},
		{"no tensors", rawSafetensors(map[string]any{}, 0), "no tensors"},
		{"not vit names", rawSafetensors(map[string]any{"conv1.weight": tensor("F32", []int{1}, 0, 4)}, 4), "no tensor name follows timm, Hugging Face or torchvision"},
		{"NaN tensor", validFile(t, func(ts tensorSet) { ts["blocks.0.mlp.fc1.weight"].Data[3] = float32(math.NaN()) }), "tensor blocks.0.mlp.fc1.weight holds NaN at index 3"},
		{"Inf tensor", validFile(t, func(ts tensorSet) { ts["head.bias"].Data[0] = float32(math.Inf(-1)) }), "tensor head.bias holds -Inf"},
		{"wrong shape", validFile(t, func(ts tensorSet) { ts.put("head.bias", make([]float32, 4), 4) }), "tensor head.bias has shape [4], want [5]"},
		{"wrong rank", validFile(t, func(ts tensorSet) { ts.put("patch_embed.proj.weight", make([]float32, 64*48), 64, 48) }), "patch_embed.proj.weight has shape [64 48], want [dim, channels, patch, patch]"},
		{"unknown tensor", validFile(t, func(ts tensorSet) { ts.put("blocks.0.attn.extra", []float32{1}, 1) }), "1 unexpected tensors (NonStrict would skip them): blocks.0.attn.extra"},
		{"missing tensor", validFile(t, func(ts tensorSet) { delete(ts, "blocks.1.norm2.bias"); delete(ts, "head.weight") }), "missing 2 tensors: blocks.1.norm2.bias, head.weight"},
		{"missing and unknown", validFile(t, func(ts tensorSet) { delete(ts, "norm.bias"); ts.put("norm.beta", []float32{1}, 1) }), "1 missing tensors: norm.bias; 1 unexpected tensors: norm.beta"},
		{"non-square grid", validFile(t, func(ts tensorSet) { ts.put("pos_embed", make([]float32, 18*64), 1, 18, 64) }), "17 patch positions"}, // neither 17 nor 18 is a square,
		{"gap without fc_norm", validFile(t, func(ts tensorSet) { delete(ts, "cls_token"); ts.put("pos_embed", make([]float32, 16*64), 1, 16, 64) }), "fc_norm=False GAP models"},
		{"zip without data.pkl", zipFile(t, map[string]string{"a.txt": "hi"}), "zip archive without data.pkl"},
		{"npz", zipFile(t, map[string]string{"w.npy": "\x93NUMPY"}), "NumPy .npz archive"},
		{"torchscript", zipFile(t, map[string]string{"m/constants.pkl": "", "m/data.pkl": ""}), "TorchScript"},
		{"bad pickle", zipFile(t, map[string]string{"m/data.pkl": "\x80\x02\xff"}), "unknown opcode 0xff"},
		{"forged pickle length", zipFile(t, map[string]string{"m/data.pkl": "\x80\x04\x8e\xff\xff\xff\xff\xff\xff\x00\x00"}), "pickle truncated or corrupt"},
		{"self-containing pickle", zipFile(t, map[string]string{"m/data.pkl": "\x80\x02]q\x00(h\x00tq\x01ah\x01Q."}), "unexpected persistent id (a value of type *types.List)"},
		{"not a state_dict", zipFile(t, map[string]string{"m/data.pkl": "\x80\x02K\x05."}), "holds a value of type int, not a state_dict"},
		{"truncated pth", pth[:len(pth)/2], "zip"},
		{"legacy pickle, no magic", []byte("\x80\x02K\x05."), "without PyTorch's magic number"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, _, err := LoadBytes(tc.name, tc.file, Options{})
			if m != nil {
				t.Error("model returned with an error")
			}
			mustContain(t, err, tc.name+": ", tc.want)
		})
	}
}

// A width not a multiple of 64 without heads anywhere asks for the count.
func TestHeadsNeeded(t *testing.T) {
	c := tinyConfig()
	c.Dim, c.Heads = 48, 4
	m := randomModel(t, c)
	file := safetensorsFile(t, exportTimm(m), nil, safetensors.F32)
	_, _, err := LoadBytes("small.safetensors", file, Options{})
	mustContain(t, err, "small.safetensors: ", "width 48 is not a multiple of 64", "--heads N (possible: 1 (head size 48))")
	var unknown *HeadsUnknownError
	if !errors.As(err, &unknown) || unknown.Dim != 48 {
		t.Errorf("%v: want a HeadsUnknownError for width 48", err)
	}
	got, _, err := LoadBytes("small.safetensors", file, Options{Override: &vit.Config{Heads: 4}})
	if err != nil || got.Config != c {
		t.Fatal(err, got.Config)
	}
}

// The head counts offered for a width: head sizes 32-128, 64 first, then by
// closeness to 64; every divisor for a toy width.
func TestHeadChoices(t *testing.T) {
	for _, c := range []struct {
		dim  int
		want []int
	}{
		{768, []int{12, 16, 8, 6, 24}},
		{48, []int{1}},
		{100, []int{2, 1}},
		{16, []int{1, 2, 4, 8, 16}},
	} {
		if got := HeadChoices(c.dim); !slices.Equal(got, c.want) {
			t.Errorf("HeadChoices(%d) = %v, want %v", c.dim, got, c.want)
		}
	}
}
