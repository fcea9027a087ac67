//go:build !js

package gpu

import (
	"testing"

	"vitlens/vit"
	"vitlens/vit/lens"
)

// Every kernel compiles and a model runs on a device holding only WebGPU's
// default limits (8 storage buffers per stage, 256 invocations, 16 KiB of
// workgroup memory, 128 MiB bindings): what a browser guarantees.
func TestKernelsWithinWebGPUDefaultLimits(t *testing.T) {
	testHarness(t)
	d, err := openDeviceLimits(true)
	if err != nil {
		t.Fatal(err)
	}
	if d.limits.MaxComputeWorkgroupStorageSize != 16384 || d.limits.MaxStorageBuffersPerShaderStage != 8 {
		t.Logf("device limits are not the defaults: %+v", d.limits)
	}
	m := randomModel(t, cfgCLS, 5)
	b, err := newOnDevice(m, Options{}, d)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	images := vit.RandomImages(cfgCLS, 2, 4)
	req := lens.Request{Sites: vit.AllSites(), TopK: 16, Taps: allTaps(), Edit: vit.EditNoCLS}
	got, err := b.Analyze(images, req)
	if err != nil {
		t.Fatal(err)
	}
	compareResults(t, m, images, req, got)
}
