package vittest

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"math"
	"slices"
	"testing"
)

// b16 is ViT-B/16 as in testdata/reference/b16/golden.safetensors.
var b16 = B16

// Values printed by tools/reference/splitmix.py (float32 bits, decimal in the comment).
func TestSplitmixMatchesNumpy(t *testing.T) {
	for _, c := range []struct {
		name  string
		shape []int
		j     int
		bits  uint32
	}{
		{"patch_embed.proj.weight", []int{768, 3, 16, 16}, 12345, 0xbd36e2ab}, // -0.0446497612
		{"patch_embed.proj.bias", []int{768}, 767, 0x3bae987b},                // 0.00532823568
		{"cls_token", []int{1, 1, 768}, 0, 0xbb1591cd},                        // -0.00228224997
		{"pos_embed", []int{1, 197, 768}, 151295, 0xbc8bf0a0},                 // -0.0170825124
		{"blocks.0.norm1.weight", []int{768}, 5, 0x3f7aae0a},                  // 0.979218125
		{"blocks.0.norm1.bias", []int{768}, 6, 0xbd6ffad0},                    // -0.0585888028
		{"blocks.3.attn.qkv.bias", []int{2304}, 100, 0x3bca0566},              // 0.00616519433
		{"blocks.7.attn.proj.weight", []int{768, 768}, 0, 0xbd3d3b5e},         // -0.0461991951
		{"blocks.11.mlp.fc1.weight", []int{3072, 768}, 2359295, 0x3c4c973a},   // 0.0124872271
		{"norm.bias", []int{768}, 767, 0xbda824a2},                            // -0.0821011215
		{"head.weight", []int{1000, 768}, 12345, 0xbcb7ada0},                  // -0.022421658
		{"head.bias", []int{1000}, 999, 0x3a4898cd},                           // 0.000765216362
	} {
		got := SplitmixTensor(c.name, c.shape...).Data[c.j]
		if math.Float32bits(got) != c.bits {
			t.Errorf("%s[%d] = %.9g, numpy gives %.9g", c.name, c.j, got, math.Float32frombits(c.bits))
		}
	}
}

// The digest covers every value of the B/16 weights (sha256 over name bytes +
// little-endian float32 data, in TimmShapes order), as printed by splitmix.py.
func TestSplitmixB16Digest(t *testing.T) {
	if testing.Short() {
		t.Skip("generates 86.6M values")
	}
	const want = "3c7f48d90264dabc585414e153afa7081baed8ee95a246443bd9d55351452b6f"
	h := sha256.New()
	var buf []byte
	for _, ns := range TimmShapes(b16) {
		x := SplitmixTensor(ns.Name, ns.Shape...)
		buf = slices.Grow(buf[:0], 4*len(x.Data))[:4*len(x.Data)]
		for i, v := range x.Data {
			binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(v))
		}
		h.Write([]byte(ns.Name))
		h.Write(buf)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		t.Errorf("B/16 splitmix digest %s, numpy gives %s", got, want)
	}
}

// TimmShapes must name and shape tensors exactly as the timm fixture files do,
// for pre-norm, qkv_bias=False and mean-pooled post-norm models.
func TestTimmShapesMatchFixtures(t *testing.T) {
	for _, fixture := range []string{"tiny", "odd", "nobias", "gap"} {
		cfg, err := Load(t, fixture).Config()
		if err != nil {
			t.Fatal(err)
		}
		weights := Load(t, fixture, "timm.safetensors")
		var names []string
		for _, ns := range TimmShapes(cfg) {
			names = append(names, ns.Name)
			w, err := weights.Tensor(ns.Name)
			if err != nil {
				t.Errorf("%s: %v", fixture, err)
				continue
			}
			if !slices.Equal(w.Shape, ns.Shape) {
				t.Errorf("%s: %s has shape %v in the file, TimmShapes says %v", fixture, ns.Name, w.Shape, ns.Shape)
			}
		}
		slices.Sort(names)
		if got := weights.Names(); !slices.Equal(got, names) {
			t.Errorf("%s: file has %d tensors, TimmShapes lists %d", fixture, len(got), len(names))
		}
	}
}

func TestSplitmixTensorsCount(t *testing.T) {
	tiny := b16
	tiny.ImageSize, tiny.PatchSize, tiny.Dim, tiny.Depth, tiny.Heads, tiny.MLPDim, tiny.Classes = 32, 8, 16, 2, 2, 40, 7
	n := 0
	for _, x := range SplitmixTensors(tiny) {
		n += x.Numel()
	}
	// torchvision.models.VisionTransformer(32, 8, 2, 2, 16, 40, num_classes=7) has 8503 parameters.
	if n != 8503 {
		t.Errorf("tiny splitmix model has %d values, want 8503", n)
	}
}
