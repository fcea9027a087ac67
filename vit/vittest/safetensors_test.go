package vittest

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"vitlens/vit/checkpoint"
)

// A written file loads back (by the checkpoint reader) as the same tensors.
func TestWriteSafetensorsRoundTrip(t *testing.T) {
	tiny := B16
	tiny.ImageSize, tiny.PatchSize, tiny.Dim, tiny.Depth, tiny.Heads, tiny.MLPDim, tiny.Classes = 32, 8, 16, 2, 2, 40, 7
	want := SplitmixTensors(tiny)
	path := filepath.Join(t.TempDir(), "tiny.safetensors")
	if err := WriteSafetensors(path, want); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	got, _, _, err := checkpoint.ReadTensors(path, data)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("%d tensors read back, %d written", len(got), len(want))
	}
	for name, w := range want {
		g := got[name]
		if g == nil || len(g.Data) != len(w.Data) || !slices.Equal(g.Shape, w.Shape) {
			t.Fatalf("%s read back as %v", name, g)
		}
		for i := range w.Data {
			if g.Data[i] != w.Data[i] {
				t.Fatalf("%s[%d] = %g, wrote %g", name, i, g.Data[i], w.Data[i])
			}
		}
	}
}
