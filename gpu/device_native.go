//go:build !js

package gpu

import (
	"errors"
	"fmt"
	"time"

	"github.com/cogentcore/webgpu/wgpu"
)

func requestAdapter() (*wgpu.Instance, *wgpu.Adapter, error) {
	// wgpu-native warns about missing windowing on every headless start;
	// errors still print.
	wgpu.SetLogLevel(wgpu.LogLevelError)
	inst := wgpu.CreateInstance(nil)
	if inst == nil {
		return nil, nil, fmt.Errorf("gpu: %w (wgpu-native could not create an instance)", errNoAdapter)
	}
	ad, err := inst.RequestAdapter(&wgpu.RequestAdapterOptions{PowerPreference: wgpu.PowerPreferenceHighPerformance})
	if err != nil || ad == nil {
		inst.Release()
		return nil, nil, fmt.Errorf("gpu: %w (no Vulkan, Metal, DX12 or GL driver answered; on Debian, apt-get install mesa-vulkan-drivers libvulkan1 gives a CPU one)", errNoAdapter)
	}
	return inst, ad, nil
}

func adapterDescription(ad *wgpu.Adapter) string {
	info := ad.GetInfo()
	return describeAdapter(info.Name, info.DriverDescription, info.VendorName, info.Architecture,
		info.AdapterType.String(), info.BackendType.String())
}

func probeAdapter() (string, error) {
	inst, ad, err := requestAdapter()
	if err != nil {
		return "", err
	}
	defer inst.Release()
	defer ad.Release()
	return adapterDescription(ad), nil
}

// platformDevice: natively, wgpu's Device is all there is.
type platformDevice struct{}

func openDevice() (*device, error) { return openDeviceLimits(false) }

// createPipeline compiles a kernel's pipeline; wgpu-native does it before
// returning.
func (d *device) createPipeline(layout *wgpu.PipelineLayout, module *wgpu.ShaderModule) (*wgpu.ComputePipeline, error) {
	return d.dev.CreateComputePipeline(&wgpu.ComputePipelineDescriptor{
		Layout:  layout, // no Label: the js descriptor has none
		Compute: wgpu.ProgrammableStageDescriptor{Module: module, EntryPoint: "main"},
	})
}

// openDeviceLimits opens a device with the adapter's own limits (bigger
// buffers than the WebGPU defaults), or, for tests that check the kernels
// would run in a browser, with the WebGPU default limits.
func openDeviceLimits(webDefaults bool) (*device, error) {
	inst, ad, err := requestAdapter()
	if err != nil {
		return nil, err
	}
	d := &device{desc: adapterDescription(ad)}
	// No DeviceLostCallback: cogentcore/webgpu v0.23.0 passes it to C inside
	// a Go pointer, which cgo's pointer check rejects with a panic. A lost
	// device shows instead as a failed buffer mapping (readBuffer).
	desc := &wgpu.DeviceDescriptor{Label: "vitlens"}
	if ad.HasFeature(wgpu.FeatureNameTimestampQuery) {
		desc.RequiredFeatures = append(desc.RequiredFeatures, wgpu.FeatureNameTimestampQuery)
	}
	d.shaderF16 = ad.HasFeature(wgpu.FeatureNameShaderF16)
	if !webDefaults {
		// GetLimits returns garbage in MaxPushConstantSize, which makes
		// RequestDevice fail without saying why: we use none.
		lim := ad.GetLimits().Limits
		lim.MaxPushConstantSize = 0
		desc.RequiredLimits = &wgpu.RequiredLimits{Limits: lim}
	}
	dev, err := ad.RequestDevice(desc)
	if err != nil {
		ad.Release()
		inst.Release()
		return nil, fmt.Errorf("gpu: adapter %s refused a device: %w", d.desc, err)
	}
	d.dev = dev
	d.timestamps = dev.HasFeature(wgpu.FeatureNameTimestampQuery)
	d.queue = dev.GetQueue()
	d.limits = dev.GetLimits().Limits
	d.release = func() {
		d.queue.Release()
		dev.Release()
		ad.Release()
		inst.Release()
	}
	return d, nil
}

// wait blocks until the queue has finished all submitted work.
//
// It never calls the blocking Poll(true): wgpu-native's blocking wait gives
// up after a fixed timeout (5 s in wgpu-core) and then treats the
// submission as finished, so results read afterwards are incomplete and
// buffers freed afterwards are still in use. On lavapipe under load this
// showed as wrong results followed by segfaults. Non-blocking polls report
// the queue empty only when the fence says so.
func (d *device) wait() {
	sleep := 10 * time.Microsecond
	for !d.dev.Poll(false, nil) {
		time.Sleep(sleep)
		sleep = min(2*sleep, time.Millisecond)
	}
}

// awaitMapped polls until a MapAsync callback reported (done), after wait.
// The work is finished by then, so the callback comes within a poll or two;
// polling right away also keeps short the window in which cogentcore/webgpu
// holds the callback's handle only through a pointer C keeps.
func (d *device) awaitMapped(done func() bool) error {
	deadline := time.Now().Add(10 * time.Second)
	for !done() {
		d.dev.Poll(false, nil)
		if done() {
			break
		}
		if time.Now().After(deadline) {
			return errors.New("gpu: mapping results never completed; the device may be lost")
		}
		time.Sleep(10 * time.Microsecond)
	}
	return nil
}
