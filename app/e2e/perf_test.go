package e2e

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"vitlens/vit"
	"vitlens/vit/vittest"
)

// b16 is ViT-B/16's shape with ImageNet's 1000 classes.
var b16 = vit.Config{ImageSize: 224, PatchSize: 16, Channels: 3, Dim: 768, Depth: 12, Heads: 12, MLPDim: 3072,
	Classes: 1000, QKVBias: true, LNEps: 1e-6, ClassToken: true, Pool: vit.PoolCLS}

// writeSafetensors writes timm-named tensors as float32 safetensors.
func writeSafetensors(path string, tensors map[string]*vit.Tensor) error {
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
	defer f.Close()
	if err := binary.Write(f, binary.LittleEndian, uint64(len(h))); err != nil {
		return err
	}
	if _, err := f.Write(h); err != nil {
		return err
	}
	buf := make([]byte, 0, 1<<20)
	for _, n := range names {
		for _, v := range tensors[n].Data {
			buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
			if len(buf) == cap(buf) {
				if _, err := f.Write(buf); err != nil {
					return err
				}
				buf = buf[:0]
			}
		}
	}
	_, err = f.Write(buf)
	return err
}

// TestPerfB16 measures a ViT-B/16-sized model (random splitmix weights,
// 346 MB) in the page: loading it, and analysing two images, on the CPU
// fallback and on WebGPU. A measurement, not a check: it runs only with
// VITLENS_E2E_PERF=1 (cpu, webgpu or both via VITLENS_E2E_PERF_BACKENDS).
func TestPerfB16(t *testing.T) {
	if os.Getenv("VITLENS_E2E_PERF") == "" {
		t.Skip("set VITLENS_E2E_PERF=1 to measure a B/16-sized model in the browser")
	}
	ts := serve(t)
	path := filepath.Join(t.TempDir(), "vit-b16-splitmix.safetensors")
	if err := writeSafetensors(path, vittest.SplitmixTensors(b16)); err != nil {
		t.Fatal(err)
	}
	backends := os.Getenv("VITLENS_E2E_PERF_BACKENDS")
	if backends == "" {
		backends = "cpu,webgpu"
	}
	for _, backend := range []string{"cpu", "webgpu"} {
		if !containsWord(backends, backend) {
			continue
		}
		t.Run(backend, func(t *testing.T) {
			ctx := browser(t, backend == "webgpu")
			if err := chromedp.Do(ctx, chromedp.Navigate(ts.URL)); err != nil {
				t.Fatal(err)
			}
			s := waitState(t, ctx, `d.status === 'ready' && +d.seq >= 1`, firstLoad)
			t.Logf("%s: demo first analysis %.0f ms after navigation, %.1f ms", s.Backend, s.FirstMS, s.summary(t).ElapsedMS)
			start := time.Now()
			if err := chromedp.Do(ctx, chromedp.SetUploadFiles(chromedp.ID("vl-model-file"), []string{path})); err != nil {
				t.Fatal(err)
			}
			s = waitState(t, ctx, `d.status === 'ready' && d.model.startsWith('vit-b16')`, 15*time.Minute)
			t.Logf("%s B/16: loaded and first analysis in %v (analysis %.0f ms)", s.Backend, time.Since(start).Round(time.Millisecond), s.summary(t).ElapsedMS)
			screenshot(t, ctx, "perf-b16-"+backend)
			eval(t, ctx, `document.querySelector('.vl-thumb[data-sample="3"]').click()`)
			s = waitState(t, ctx, fmt.Sprintf(`d.status === 'ready' && +d.seq > %d`, s.Seq), 15*time.Minute)
			t.Logf("%s B/16: second image, analysis %.0f ms", s.Backend, s.summary(t).ElapsedMS)
		})
	}
}

func containsWord(list, w string) bool {
	for i := 0; i+len(w) <= len(list); i++ {
		if list[i:i+len(w)] == w && (i == 0 || list[i-1] == ',') && (i+len(w) == len(list) || list[i+len(w)] == ',') {
			return true
		}
	}
	return false
}
