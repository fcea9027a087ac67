//go:build js

package gpu

import (
	"fmt"
	"syscall/js"
	"unsafe"

	"github.com/cogentcore/webgpu/jsx"
	"github.com/cogentcore/webgpu/wgpu"
)

// In the browser we request the adapter and device through syscall/js
// ourselves: cogentcore/webgpu's js Adapter has no GetInfo and drops
// RequiredLimits, and we want both the adapter's name and its larger buffer
// limits. The device is then wrapped with wgpu.NewDevice. Every await here
// blocks the calling goroutine on a promise: never call into this package
// from inside a js.FuncOf callback (it would deadlock).

// platformDevice holds the page's GPUDevice, for the calls the binding lacks.
type platformDevice struct{ js js.Value }

// createPipeline compiles a kernel's pipeline with createComputePipelineAsync,
// which the binding does not offer: the promise lets the page run while the
// browser compiles (the synchronous call stalls the first dispatch instead).
func (d *device) createPipeline(layout *wgpu.PipelineLayout, module *wgpu.ShaderModule) (*wgpu.ComputePipeline, error) {
	desc := map[string]any{
		"layout":  jsValueOf(layout),
		"compute": map[string]any{"module": jsValueOf(module), "entryPoint": "main"},
	}
	p, ok := jsx.Await(d.js.Call("createComputePipelineAsync", desc))
	if !ok {
		msg := "rejected"
		if p.Truthy() {
			msg = p.Call("toString").String()
		}
		return nil, fmt.Errorf("createComputePipelineAsync: %s", msg)
	}
	return wrapJS[wgpu.ComputePipeline](p), nil
}

// cogentcore/webgpu v0.23.0's browser objects are each a struct of one
// unexported js.Value, with no way to build one from a js.Value or to read
// it: jsValueOf and wrapJS do both through that layout. The array sizes
// below fail to compile if the layout grows or shrinks.
var (
	_ [unsafe.Sizeof(wgpu.ComputePipeline{}) - unsafe.Sizeof(js.Value{})]byte
	_ [unsafe.Sizeof(js.Value{}) - unsafe.Sizeof(wgpu.ComputePipeline{})]byte
	_ [unsafe.Sizeof(wgpu.PipelineLayout{}) - unsafe.Sizeof(js.Value{})]byte
	_ [unsafe.Sizeof(js.Value{}) - unsafe.Sizeof(wgpu.PipelineLayout{})]byte
	_ [unsafe.Sizeof(wgpu.ShaderModule{}) - unsafe.Sizeof(js.Value{})]byte
	_ [unsafe.Sizeof(js.Value{}) - unsafe.Sizeof(wgpu.ShaderModule{})]byte
)

func jsValueOf[T wgpu.PipelineLayout | wgpu.ShaderModule](p *T) js.Value {
	return *(*js.Value)(unsafe.Pointer(p))
}

func wrapJS[T wgpu.ComputePipeline](v js.Value) *T { return (*T)(unsafe.Pointer(&v)) }

func jsString(v js.Value) string {
	if v.Type() == js.TypeString {
		return v.String()
	}
	return ""
}

func requestAdapter() (js.Value, error) {
	nav := js.Global().Get("navigator")
	if !nav.Truthy() || !nav.Get("gpu").Truthy() {
		return js.Undefined(), fmt.Errorf("gpu: %w (this browser has no navigator.gpu)", errNoAdapter)
	}
	ad, ok := jsx.Await(nav.Get("gpu").Call("requestAdapter", map[string]any{"powerPreference": "high-performance"}))
	if !ok || !ad.Truthy() {
		return js.Undefined(), fmt.Errorf("gpu: %w (navigator.gpu.requestAdapter returned none)", errNoAdapter)
	}
	return ad, nil
}

func adapterDescription(ad js.Value) string {
	info := ad.Get("info")
	if !info.Truthy() {
		return describeAdapter("", "", "", "", "", "browser")
	}
	kind := ""
	if fb := ad.Get("isFallbackAdapter"); fb.Type() == js.TypeBoolean && fb.Bool() {
		kind = "fallback"
	}
	return describeAdapter(jsString(info.Get("device")), jsString(info.Get("description")),
		jsString(info.Get("vendor")), jsString(info.Get("architecture")), kind, "browser")
}

func probeAdapter() (string, error) {
	ad, err := requestAdapter()
	if err != nil {
		return "", err
	}
	return adapterDescription(ad), nil
}

func openDevice() (*device, error) {
	ad, err := requestAdapter()
	if err != nil {
		return nil, err
	}
	d := &device{desc: adapterDescription(ad)}
	// Kernels stay within the WebGPU default limits; only buffer sizes are
	// raised to what the adapter allows, so bigger batches fit.
	required := map[string]any{}
	lim := ad.Get("limits")
	for _, name := range []string{"maxStorageBufferBindingSize", "maxBufferSize"} {
		if v := lim.Get(name); v.Type() == js.TypeNumber {
			required[name] = v.Float()
		}
	}
	jsDev, ok := jsx.Await(ad.Call("requestDevice", map[string]any{"label": "vitlens", "requiredLimits": required}))
	if !ok || !jsDev.Truthy() {
		return nil, fmt.Errorf("gpu: adapter %s refused a device", d.desc)
	}
	// The lost promise settles once; its callback only records the reason.
	jsDev.Get("lost").Call("then", js.FuncOf(func(this js.Value, args []js.Value) any {
		msg := "unknown reason"
		if len(args) > 0 && args[0].Truthy() {
			msg = jsString(args[0].Get("reason")) + ": " + jsString(args[0].Get("message"))
		}
		d.markLost(msg)
		return nil
	}))
	dev := wgpu.NewDevice(jsDev)
	d.dev, d.js = &dev, jsDev
	d.queue = dev.GetQueue()
	d.limits = dev.GetLimits().Limits
	d.release = func() { jsDev.Call("destroy") }
	return d, nil
}

// wait blocks until the queue has finished all submitted work.
func (d *device) wait() { d.queue.OnSubmittedWorkDone(func(wgpu.QueueWorkDoneStatus) {}) }

// awaitMapped has nothing to do in the browser: MapAsync itself blocked on
// the mapping promise.
func (d *device) awaitMapped(done func() bool) error { return nil }
