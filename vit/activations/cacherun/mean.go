// Package cacherun reads the runs of `vitlens cache`: its safetensors
// chunks and the dataset means that `vitlens patch --mode mean` patches in.
// It is apart from package activations, which the web app imports, so that
// the app does not carry the results package (and its S3 client).
package cacherun

import (
	"fmt"
	"os"
	"slices"
	"strings"

	"vitlens/vit"
	"vitlens/vit/activations"
	"vitlens/vit/checkpoint"
	"vitlens/vit/results"
)

// FileKind is the folder of a cache run's safetensors chunks under the
// results folder's files/ (results.ChunkFilePath).
const FileKind = "activations"

// Mean reads a finished (or merged) cache run and returns, for each of
// hooks, the mean activation over its images, in the hook's own layout for
// one image. The run must have kept every token (--tokens all); the error
// names the flag to rerun with.
func Mean(dir string, c vit.Config, hooks []vit.Hook) (map[vit.Hook]*vit.Tensor, int, error) {
	if err := results.Verify(dir); err != nil {
		return nil, 0, err
	}
	m, err := results.ReadManifest(dir)
	if err != nil {
		return nil, 0, err
	}
	if m.Experiment != "cache" {
		return nil, 0, fmt.Errorf("%s is a %s run, not a cache run", dir, m.Experiment)
	}
	if m.Config != c {
		return nil, 0, fmt.Errorf("%s was cached from another architecture (%s): give the same --model", dir, m.ModelPath)
	}
	if m.Params["tokens"] != string(activations.AllTokens) {
		return nil, 0, fmt.Errorf("%s kept --tokens %s: means to patch with need a cache run with --tokens all", dir, m.Params["tokens"])
	}
	cached := strings.Split(m.Params["hooks"], ",")
	for _, h := range hooks {
		if !slices.Contains(cached, h.Name()) {
			return nil, 0, fmt.Errorf("%s has no %s (it cached %s): rerun cache with --hooks including it", dir, h.Name(), m.Params["hooks"])
		}
	}
	sum := map[vit.Hook][]float64{}
	images := 0
	for k := 0; k*m.ChunkSize < m.Total; k++ {
		path := results.ChunkFilePath(dir, FileKind, k, ".safetensors")
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, 0, err
		}
		ts, _, _, err := checkpoint.ReadTensors(path, data)
		if err != nil {
			return nil, 0, err
		}
		for _, h := range hooks {
			t := ts[h.Name()]
			if t == nil || t.Shape[0] == 0 {
				continue
			}
			per := t.Numel() / t.Shape[0]
			s := sum[h]
			if s == nil {
				s = make([]float64, per)
				sum[h] = s
			}
			if len(s) != per {
				return nil, 0, fmt.Errorf("%s: %s has %d values per image, earlier chunks %d", path, h.Name(), per, len(s))
			}
			for i, v := range t.Data {
				s[i%per] += float64(v)
			}
		}
		if t := ts["images"]; t != nil {
			images += t.Numel()
		}
	}
	if images == 0 {
		return nil, 0, fmt.Errorf("%s holds no images", dir)
	}
	out := map[vit.Hook]*vit.Tensor{}
	for _, h := range hooks {
		shape := c.HookShape(h, c.NumTokens())
		t := vit.NewTensor(shape...)
		if len(sum[h]) != len(t.Data) {
			return nil, 0, fmt.Errorf("%s: %s has %d values per image, the model %v", dir, h.Name(), len(sum[h]), shape)
		}
		for i, v := range sum[h] {
			t.Data[i] = float32(v / float64(images))
		}
		out[h] = t
	}
	return out, images, nil
}
