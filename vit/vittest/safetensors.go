package vittest

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"sort"

	"vitlens/vit"
)

// B16 is ViT-B/16's shape (timm vit_base_patch16_224) with ImageNet's 1000 classes.
var B16 = vit.Config{ImageSize: 224, PatchSize: 16, Channels: 3, Dim: 768, Depth: 12, Heads: 12, MLPDim: 3072,
	Classes: 1000, QKVBias: true, LNEps: 1e-6, ClassToken: true, Pool: vit.PoolCLS}

// WriteSafetensors writes named tensors (e.g. SplitmixTensors' timm names)
// as a float32 safetensors file, tensors in sorted-name order.
func WriteSafetensors(path string, tensors map[string]*vit.Tensor) error {
	names := make([]string, 0, len(tensors))
	for n := range tensors {
		names = append(names, n)
	}
	sort.Strings(names)
	header := map[string]any{}
	off := 0
	for _, n := range names {
		t := tensors[n]
		header[n] = map[string]any{"dtype": "F32", "shape": t.Shape, "data_offsets": []int{off, off + 4*len(t.Data)}}
		off += 4 * len(t.Data)
	}
	h, err := json.Marshal(header)
	if err != nil {
		return err
	}
	for len(h)%8 != 0 {
		h = append(h, ' ')
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	err = binary.Write(w, binary.LittleEndian, uint64(len(h)))
	if err == nil {
		_, err = w.Write(h)
	}
	var word [4]byte
	for _, n := range names {
		for _, v := range tensors[n].Data {
			if err != nil {
				break
			}
			binary.LittleEndian.PutUint32(word[:], math.Float32bits(v))
			_, err = w.Write(word[:])
		}
	}
	if err == nil {
		err = w.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
