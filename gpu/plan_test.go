package gpu

import (
	"strings"
	"testing"

	"github.com/cogentcore/webgpu/wgpu"

	"vitlens/vit"
	"vitlens/vit/lens"
)

// Batch sizing is pure arithmetic on the device's limits: no GPU needed.
// With a browser's default limits, 64 B/16 images with every attention map
// tapped must be split (each image's maps are 22 MiB of readback), and a
// request that cannot fit even one image must be refused clearly.
func TestBatchSizeFitsLimits(t *testing.T) {
	web := wgpu.Limits{MaxStorageBufferBindingSize: 128 << 20, MaxBufferSize: 256 << 20}
	b := &Backend{model: &vit.Model{Config: cfgB16}, opt: Options{MemoryBudget: 1 << 30, MaxBatch: 64}, d: &device{limits: web}}
	req := lens.Request{Sites: vit.AllSites(), TopK: 5, Taps: vit.Taps{AttnProbs: true}}
	key := requestKey(req, cfgB16.NumTokens())
	size, err := b.batchSize(key, req.Sites, 64)
	if err != nil {
		t.Fatal(err)
	}
	key.batch = size
	if size >= 64 || size < 1 || planSizes(cfgB16, key, req.Sites, 0).fits(web, 1<<30) != nil {
		t.Fatalf("batch of 64 B/16 attention taps split to %d", size)
	}
	key.batch = size + 1
	if planSizes(cfgB16, key, req.Sites, 0).fits(web, 1<<30) == nil && size < 64 {
		t.Fatalf("batch %d would also fit; split is not the largest", size+1)
	}
	t.Logf("64 B/16 images with attention taps run as batches of %d under the WebGPU default limits", size)

	// Without taps the lens alone fits far more.
	plain := lens.Request{Sites: []vit.Site{vit.SiteHS}, TopK: 5, Targets: make([]int, 64)}
	if n, err := b.batchSize(requestKey(plain, cfgB16.NumTokens()), plain.Sites, 64); err != nil || n < 16 {
		t.Errorf("plain lens batch %d, %v", n, err)
	}

	b.opt.MemoryBudget = 16 << 20
	if _, err := b.batchSize(key, req.Sites, 64); err == nil || !strings.Contains(err.Error(), "even one image does not fit") {
		t.Errorf("16 MiB budget: %v", err)
	}
}
