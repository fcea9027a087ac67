package gpu

import (
	"fmt"
	"math"

	"github.com/cogentcore/webgpu/wgpu"
)

// buf is a GPU buffer with its size in bytes.
type buf struct {
	b    *wgpu.Buffer
	size uint64
	name string
	// kMajor: a Linear weight laid out for the tiled matmuls (see kMajor).
	kMajor bool
	// f16: those weights stored as packed halves (packF16 of the k-major
	// layout), read by the tiled variants' f16 twins.
	f16 bool
}

// view is the byte range of a buffer bound to one binding; size 0 means
// "to the end" (sent as WholeSize, which the browser build requires).
type view struct {
	b         *buf
	off, size uint64
}

func whole(b *buf) view { return view{b: b} }

func (v view) bytes() uint64 {
	if v.size == 0 {
		return v.b.size - v.off
	}
	return v.size
}

// step is one dispatch (k != nil) or one buffer copy, in command order.
type step struct {
	op     string // what it computes, for profiles ("matmul.qkv", "lens", ...)
	k      *kernel
	views  []view
	slot   uint64 // byte offset of its parameters in the uniform buffer
	groups [3]uint32
	flops  float64
	bind   *wgpu.BindGroup

	src, dst view // copies
}

// paramSlot is the stride of per-dispatch parameter blocks in the shared
// uniform buffer: WebGPU's minUniformBufferOffsetAlignment default.
const paramSlot = 256

// program is a recorded sequence of dispatches and copies over buffers it
// owns. It is built once per shape (see plan) and replayed by encoding it into
// a command buffer; parameters of every dispatch live in one uniform buffer
// uploaded once, so replaying needs no writes.
type program struct {
	d        *device
	ks       *kernels
	steps    []step
	params   []byte
	paramBuf *wgpu.Buffer
	owned    []*buf
	bytes    uint64 // allocated by alloc
}

func newProgram(d *device, ks *kernels) *program { return &program{d: d, ks: ks} }

// alloc creates a zeroed storage buffer the program owns.
func (p *program) alloc(name string, bytes uint64) (*buf, error) {
	b, err := newStorage(p.d, name, bytes, wgpu.BufferUsageStorage|wgpu.BufferUsageCopySrc|wgpu.BufferUsageCopyDst)
	if err != nil {
		return nil, err
	}
	p.owned = append(p.owned, b)
	p.bytes += b.size
	return b, nil
}

func newStorage(d *device, name string, bytes uint64, usage wgpu.BufferUsage) (*buf, error) {
	size := max(16, (bytes+3)/4*4)
	if lim := d.limits.MaxBufferSize; lim > 0 && size > lim {
		return nil, fmt.Errorf("gpu: buffer %s needs %s, over the device's %s buffer limit", name, mib(size), mib(lim))
	}
	b, err := d.dev.CreateBuffer(&wgpu.BufferDescriptor{Label: name, Size: size, Usage: usage})
	if err != nil {
		return nil, fmt.Errorf("gpu: allocating %s (%s): %w", name, mib(size), err)
	}
	return &buf{b: b, size: size, name: name}, nil
}

// upload creates a storage buffer holding data, through a buffer mapped at
// creation: unlike Queue.WriteBuffer this works in the browser build too.
func upload(d *device, name string, data []byte, usage wgpu.BufferUsage) (*buf, error) {
	if len(data) == 0 {
		data = make([]byte, 16)
	}
	if lim := d.limits.MaxStorageBufferBindingSize; lim > 0 && uint64(len(data)) > lim && usage&wgpu.BufferUsageStorage != 0 {
		return nil, fmt.Errorf("gpu: %s is %s, over the device's %s storage binding limit", name, mib(uint64(len(data))), mib(lim))
	}
	b, err := d.dev.CreateBufferInit(&wgpu.BufferInitDescriptor{Label: name, Contents: data, Usage: usage})
	if err != nil {
		return nil, fmt.Errorf("gpu: uploading %s (%s): %w", name, mib(uint64(len(data))), err)
	}
	return &buf{b: b, size: uint64(len(data)+3) / 4 * 4, name: name}, nil
}

func mib(n uint64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

// dispatch records a kernel run. params are the kernel's uniform block as
// 32-bit words; groups its workgroup counts; views its storage bindings 1..n.
func (p *program) dispatch(op, name string, params []uint32, groups [3]uint32, flops float64, views ...view) error {
	k, err := p.ks.get(name)
	if err != nil {
		return err
	}
	if len(views) != len(k.writable) {
		return fmt.Errorf("gpu: %s takes %d buffers, got %d", name, len(k.writable), len(views))
	}
	if len(params)*4 > paramSlot {
		return fmt.Errorf("gpu: %s parameters exceed %d bytes", name, paramSlot)
	}
	lim := p.d.limits
	for i, v := range views {
		if n := v.bytes(); lim.MaxStorageBufferBindingSize > 0 && n > lim.MaxStorageBufferBindingSize {
			return fmt.Errorf("gpu: %s binds %s (%s) over the device's %s storage binding limit", name, v.b.name, mib(n), mib(lim.MaxStorageBufferBindingSize))
		}
		if a := uint64(lim.MinStorageBufferOffsetAlignment); a > 0 && v.off%a != 0 {
			return fmt.Errorf("gpu: %s binding %d offset %d not aligned to %d", name, i+1, v.off, a)
		}
	}
	for _, g := range groups {
		if m := lim.MaxComputeWorkgroupsPerDimension; m > 0 && g > m {
			return fmt.Errorf("gpu: %s needs %d workgroups in one dimension, device allows %d", name, g, m)
		}
	}
	slot := uint64(len(p.params))
	block := make([]byte, paramSlot)
	for i, w := range params {
		block[4*i], block[4*i+1], block[4*i+2], block[4*i+3] = byte(w), byte(w>>8), byte(w>>16), byte(w>>24)
	}
	p.params = append(p.params, block...)
	p.steps = append(p.steps, step{op: op, k: k, views: views, slot: slot, groups: groups, flops: flops})
	return nil
}

// copy records a buffer-to-buffer copy of size bytes.
func (p *program) copy(op string, src view, dst view, size uint64) {
	p.steps = append(p.steps, step{op: op, src: view{b: src.b, off: src.off, size: size}, dst: view{b: dst.b, off: dst.off, size: size}})
}

// finalize uploads the parameter blocks and creates every bind group, so
// replays only encode.
func (p *program) finalize() error {
	if len(p.params) == 0 {
		return nil
	}
	pb, err := p.d.dev.CreateBufferInit(&wgpu.BufferInitDescriptor{Label: "params", Contents: p.params, Usage: wgpu.BufferUsageUniform})
	if err != nil {
		return fmt.Errorf("gpu: uploading kernel parameters: %w", err)
	}
	p.paramBuf = pb
	for i := range p.steps {
		s := &p.steps[i]
		if s.k == nil {
			continue
		}
		entries := []wgpu.BindGroupEntry{{Binding: 0, Buffer: pb, Offset: s.slot, Size: paramSlot}}
		for j, v := range s.views {
			size := v.size
			if size == 0 {
				size = wgpu.WholeSize
			}
			entries = append(entries, wgpu.BindGroupEntry{Binding: uint32(j + 1), Buffer: v.b.b, Offset: v.off, Size: size})
		}
		bg, err := p.d.dev.CreateBindGroup(&wgpu.BindGroupDescriptor{Label: s.op, Layout: s.k.layout, Entries: entries})
		if err != nil {
			return fmt.Errorf("gpu: binding %s: %w", s.op, err)
		}
		s.bind = bg
	}
	return nil
}

// retarget redirects copies into one buffer to another when encoding: a
// plan records its readback copies into its first readback buffer and
// pipelined batches alternate between two. The zero value changes nothing.
type retarget struct{ from, to *buf }

func (r retarget) of(b *buf) *buf {
	if r.from != nil && b == r.from {
		return r.to
	}
	return b
}

// encode appends the steps that sel accepts (all when nil) to enc. Dispatches
// share compute passes; a copy ends the pass it interrupts.
func (p *program) encode(enc *wgpu.CommandEncoder, sel func(*step) bool, rt retarget) error {
	var pass *wgpu.ComputePassEncoder
	end := func() {
		if pass != nil {
			pass.End()
			pass.Release() // before Finish, or wgpu-native misbehaves
			pass = nil
		}
	}
	for i := range p.steps {
		s := &p.steps[i]
		if sel != nil && !sel(s) {
			continue
		}
		if s.k == nil {
			end()
			if err := enc.CopyBufferToBuffer(s.src.b.b, s.src.off, rt.of(s.dst.b).b, s.dst.off, s.src.size); err != nil {
				return fmt.Errorf("gpu: copy %s: %w", s.op, err)
			}
			continue
		}
		if pass == nil {
			pass = enc.BeginComputePass(nil)
		}
		pass.SetPipeline(s.k.pipeline)
		pass.SetBindGroup(0, s.bind, nil)
		pass.DispatchWorkgroups(s.groups[0], s.groups[1], s.groups[2])
	}
	end()
	return nil
}

// submit encodes pre (uploads), the selected steps and post (readback
// copies) into one command buffer and submits it.
func (p *program) submit(pre, post func(*wgpu.CommandEncoder) error, sel func(*step) bool) error {
	cmd, err := p.commands(pre, post, sel, retarget{})
	if err != nil {
		return err
	}
	defer cmd.Release()
	p.d.queue.Submit(cmd)
	return nil
}

// commands encodes pre, the selected steps (copies retargeted by rt) and
// post into one command buffer, ready to submit.
func (p *program) commands(pre, post func(*wgpu.CommandEncoder) error, sel func(*step) bool, rt retarget) (*wgpu.CommandBuffer, error) {
	enc, err := p.d.dev.CreateCommandEncoder(nil)
	if err != nil {
		return nil, fmt.Errorf("gpu: command encoder: %w", err)
	}
	defer enc.Release()
	if pre != nil {
		if err := pre(enc); err != nil {
			return nil, err
		}
	}
	if err := p.encode(enc, sel, rt); err != nil {
		return nil, err
	}
	if post != nil {
		if err := post(enc); err != nil {
			return nil, err
		}
	}
	cmd, err := enc.Finish(nil)
	if err != nil {
		return nil, fmt.Errorf("gpu: finishing commands: %w", err)
	}
	return cmd, nil
}

func (p *program) release() {
	for i := range p.steps {
		if p.steps[i].bind != nil {
			p.steps[i].bind.Release()
		}
	}
	if p.paramBuf != nil {
		p.paramBuf.Release()
	}
	for _, b := range p.owned {
		b.b.Destroy()
		b.b.Release()
	}
	p.steps, p.owned, p.paramBuf = nil, nil, nil
}

// readBuffer maps a MapRead buffer after the queue finished and returns a Go
// copy of its first size bytes (natively the mapped range is C memory).
func (d *device) readBuffer(b *wgpu.Buffer, size uint64) ([]byte, error) {
	d.wait()
	return d.mapRead(b, size)
}

// mapRead is readBuffer for a buffer whose last use on the device has
// already finished (later submissions may still be running): the mapping is
// asked for only then, since cogentcore/webgpu keeps the callback's handle
// where only C points to it, and a long wait would leave it to the garbage
// collector.
func (d *device) mapRead(b *wgpu.Buffer, size uint64) ([]byte, error) {
	unset := wgpu.BufferMapAsyncStatus(math.MaxUint32)
	status := unset
	if err := b.MapAsync(wgpu.MapModeRead, 0, size, func(s wgpu.BufferMapAsyncStatus) { status = s }); err != nil {
		return nil, fmt.Errorf("gpu: mapping results: %w", err)
	}
	if err := d.awaitMapped(func() bool { return status != unset }); err != nil {
		return nil, err
	}
	if err := d.check(); err != nil {
		return nil, err
	}
	if status != wgpu.BufferMapAsyncStatusSuccess {
		return nil, fmt.Errorf("gpu: mapping results failed (%v); the device may be lost or out of memory", status)
	}
	out := append([]byte(nil), b.GetMappedRange(0, uint(size))...)
	if err := b.Unmap(); err != nil {
		return nil, fmt.Errorf("gpu: unmapping results: %w", err)
	}
	return out, nil
}

// groups1D spreads n workgroups over x and y, since one dimension is capped
// at 65535; kernels rebuild the linear index from num_workgroups.
func groups1D(n int) [3]uint32 {
	const maxDim = 65535
	if n <= maxDim {
		return [3]uint32{uint32(max(n, 1)), 1, 1}
	}
	y := (n + maxDim - 1) / maxDim
	return [3]uint32{uint32((n + y - 1) / y), uint32(y), 1}
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

func f32bits(v float32) uint32 { return math.Float32bits(v) }
