// Package gpu runs the ViT forward pass and the class-embedding lens on
// WebGPU: natively through wgpu-native (cgo) and in the browser through
// navigator.gpu (GOOS=js), with the same WGSL kernels (package shaders).
//
// It implements lens.Backend and is checked against the pure-Go CPU backend.
// A batch is one command buffer and one submission; only what the request
// asks for is read back: per-token ranks, target logits and top-k classes
// (never all class logits per token), the model's logits, and raw tensors
// only when lens.Request.Taps asks for them.
//
// Platform differences are confined to device_native.go and device_js.go.
// Kernels stay within WebGPU's default limits (8 storage buffers per stage,
// 256 invocations per workgroup, 16 KiB workgroup memory), so they run in
// browsers; buffer sizes are checked against the device's limits before
// anything is allocated and batches that do not fit are split.
package gpu

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"

	"github.com/cogentcore/webgpu/wgpu"

	"vitlens/vit"
	"vitlens/vit/lens"
)

// Options tune the backend; the zero value is sensible.
type Options struct {
	// MemoryBudget caps the bytes of GPU buffers one submission allocates
	// for activations, lens stores and readback (weights not counted);
	// bigger batches are split. 0 means 1 GiB.
	MemoryBudget int64
	// MaxBatch caps the images per submission. 0 means 64.
	MaxBatch int
	// F16Weights stores the weights of the tiled matmuls (patch embedding,
	// qkv, proj, fc1, fc2 where k is a multiple of 4) as f16, half their
	// memory, with f32 arithmetic; the model's other matrices (the heads, a
	// simple matmul's weights) are rounded to f16 too but stay stored as
	// f32, so the backend computes exactly what F16Weights(model) does in
	// f32. Tuned-lens translators stay f32. Off by default: see
	// CompareF16 for what it changes.
	F16Weights bool
}

const (
	defaultBudget   = 1 << 30
	defaultMaxBatch = 64
	// plansKept is how many compiled plans (buffers + bind groups for one
	// batch shape) stay cached: a full batch and a last partial one.
	plansKept = 2
)

// Backend is the WebGPU lens backend. Its methods may be called from several
// goroutines; batches run one at a time on the device's queue.
type Backend struct {
	model *vit.Model
	opt   Options
	dev   *Device
	owned bool // New opened dev for this backend alone: Close closes it
	d     *device
	ks    *kernels
	w     *weights

	mu    sync.Mutex
	plans []*plan // most recently used first
	// translators are the tuned lens's weights on the device, for the
	// Translators the plans of the last request were built with.
	translators *deviceTranslators
	// onDevice is the submitted batch not yet known to have finished; at
	// most one is (see startBatch).
	onDevice *batchRun
}

var _ lens.Pipeliner = (*Backend)(nil)

// Available reports whether a WebGPU adapter exists, and its description.
// The CLI's --backend auto uses it to choose between GPU and CPU.
func Available() (string, bool) {
	desc, err := probeAdapter()
	return desc, err == nil
}

// Device is an open WebGPU device with every kernel compiled, which the
// backends made on it share: the web app opens one and keeps it across
// models, images and backend switches, so the shaders are compiled once.
type Device struct {
	d  *device
	ks *kernels
}

// OpenDevice opens the device and compiles every kernel, so that a shader or
// driver problem shows here. In the browser the pipelines are created with
// createComputePipelineAsync: the page stays responsive while they compile.
// It fails with an error for which ErrNoAdapter is true when no adapter
// exists.
func OpenDevice() (*Device, error) {
	d, err := openDevice()
	if err != nil {
		return nil, err
	}
	return prepareDevice(d)
}

// prepareDevice compiles the kernels on an open device, which it then owns.
func prepareDevice(d *device) (*Device, error) {
	dev := &Device{d: d, ks: &kernels{dev: d}}
	if err := dev.ks.init(); err != nil {
		dev.Close()
		return nil, err
	}
	return dev, nil
}

// Name says which adapter runs, as Backend.Name.
func (dev *Device) Name() string { return "webgpu: " + dev.d.desc }

// Lost says, once the browser or the driver has lost the device, why.
func (dev *Device) Lost() error { return dev.d.check() }

// Close frees the kernels and the device; backends made on it must be
// closed first.
func (dev *Device) Close() {
	dev.ks.release()
	if dev.d.release != nil {
		dev.d.release()
		dev.d.release = nil
	}
}

// New opens a device, compiles every kernel and uploads m's weights (one
// buffer per tensor), for one backend that owns the device. It fails with
// an error for which ErrNoAdapter is true when no adapter exists.
func New(m *vit.Model, opt Options) (*Backend, error) {
	if err := checkModel(m); err != nil {
		return nil, err
	}
	d, err := openDevice()
	if err != nil {
		return nil, err
	}
	return newOnDevice(m, opt, d)
}

func checkModel(m *vit.Model) error {
	if err := m.CheckShapes(); err != nil {
		return fmt.Errorf("gpu: model: %w", err)
	}
	if dh := m.Config.HeadDim(); dh > maxHeadDim {
		return fmt.Errorf("gpu: head dimension %d over the attention kernel's %d", dh, maxHeadDim)
	}
	return nil
}

// newOnDevice finishes New on an open device, which it then owns.
func newOnDevice(m *vit.Model, opt Options, d *device) (*Backend, error) {
	dev, err := prepareDevice(d)
	if err != nil {
		return nil, err
	}
	b, err := dev.NewBackend(m, opt)
	if err != nil {
		dev.Close()
		return nil, err
	}
	b.owned = true
	return b, nil
}

// NewBackend uploads m's weights to the device (once: the backend keeps
// them until Close, which leaves the device open for other models).
func (dev *Device) NewBackend(m *vit.Model, opt Options) (*Backend, error) {
	if err := checkModel(m); err != nil {
		return nil, err
	}
	if err := dev.d.check(); err != nil {
		return nil, err
	}
	if opt.MemoryBudget <= 0 {
		opt.MemoryBudget = defaultBudget
	}
	if opt.MaxBatch <= 0 {
		opt.MaxBatch = defaultMaxBatch
	}
	if opt.F16Weights {
		m = F16Weights(m)
	}
	b := &Backend{model: m, opt: opt, dev: dev, d: dev.d, ks: dev.ks}
	var err error
	if b.w, err = uploadWeights(b.d, b.model, opt.F16Weights); err != nil {
		return nil, err
	}
	return b, nil
}

// WeightBytes is the GPU memory the model's weights take (tuned-lens
// translators not counted): about half the matrices' with F16Weights.
func (b *Backend) WeightBytes() int64 {
	var n int64
	for _, w := range b.w.all {
		n += int64(w.size)
	}
	return n
}

// Name says which adapter runs, e.g. "webgpu: llvmpipe (LLVM 15, 256 bits) (vulkan, cpu)".
// With F16Weights it says so: results folders record the name.
func (b *Backend) Name() string {
	if b.opt.F16Weights {
		return "webgpu (f16 weights): " + b.d.desc
	}
	return "webgpu: " + b.d.desc
}

// Close frees the weights and buffers of this backend, and the device when
// New opened it; calling it again does nothing. The backend is unusable
// afterwards.
func (b *Backend) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.settle()
	for _, p := range b.plans {
		for _, r := range p.slots { // uncollected: only their inputs to free
			if r != nil {
				freeBuf(r.staging)
				r.staging, r.collected, r.err = nil, true, errors.New("gpu: backend closed before the results were collected")
			}
		}
		p.release()
	}
	b.plans = nil
	b.translators.release()
	b.translators = nil
	if b.w != nil {
		b.w.release()
		b.w = nil
	}
	if b.owned {
		b.dev.Close()
		b.owned = false
	}
	return nil
}

// weights holds one storage buffer per weight tensor.
type weights struct {
	patchW, patchB, prefix, pos *buf
	normPreW, normPreB          *buf // norm_pre, when Config.NormPre
	blocks                      []blockWeights
	normW, normB                *buf
	headW, headB                *buf
	// distilled DeiT's two heads, halved (the output is their mean).
	halfHeadCLSW, halfHeadCLSB, halfHeadDistW, halfHeadDistB *buf
	// A head file that normalises the embedding (vit.EmbedNorm): the
	// projection P, b_P and the head file's bias.
	unitProjW, unitProjB, unitBias *buf
	all                            []*buf
}

type blockWeights struct {
	norm1W, norm1B, qkvW, qkvB, projW, projB *buf
	norm2W, norm2B, fc1W, fc1B, fc2W, fc2B   *buf
}

func f32bytes(v []float32) []byte {
	out := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(x))
	}
	return out
}

// u32bytes is v little-endian, as the shaders read a u32 array.
func u32bytes(v []uint32) []byte {
	out := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(out[4*i:], x)
	}
	return out
}

// uploadWeights uploads m's tensors; f16 stores the tiled matmuls' weights
// as packed halves (uploadLinear).
func uploadWeights(d *device, m *vit.Model, f16 bool) (*weights, error) {
	w := &weights{}
	var err error
	put := func(name string, v []float32) *buf {
		if err != nil || v == nil {
			return nil
		}
		var b *buf
		b, err = upload(d, name, f32bytes(v), wgpu.BufferUsageStorage)
		if b != nil {
			w.all = append(w.all, b)
		}
		return b
	}
	// The Linear weights the products read, in their products' layout (the
	// head stays n×k: the lens kernel reads it so).
	linear := func(name string, l vit.Linear) *buf {
		if err != nil {
			return nil
		}
		var b *buf
		// Unpacked from the CPU form into a temporary, one matrix at a time.
		b, err = uploadLinear(d, name, l.Weights(), l.Out, l.In, f16)
		if b != nil {
			w.all = append(w.all, b)
		}
		return b
	}
	w.patchW = linear("patch_embed.weight", m.Patch)
	w.patchB = put("patch_embed.bias", m.Patch.B)
	// [CLS], the distillation token and the registers, in sequence order
	// (timm's), in one buffer.
	w.prefix = put("prefix_tokens", slices.Concat(m.ClsToken, m.DistToken, m.RegTokens))
	w.pos = put("pos_embed", m.PosEmbed)
	if m.Config.NormPre {
		w.normPreW = put("norm_pre.weight", m.NormPre.W)
		w.normPreB = put("norm_pre.bias", m.NormPre.B)
	}
	for i, blk := range m.Blocks {
		p := fmt.Sprintf("blocks.%d.", i)
		w.blocks = append(w.blocks, blockWeights{
			norm1W: put(p+"norm1.weight", blk.Norm1.W), norm1B: put(p+"norm1.bias", blk.Norm1.B),
			qkvW: linear(p+"attn.qkv.weight", blk.QKV), qkvB: put(p+"attn.qkv.bias", blk.QKV.B),
			projW: linear(p+"attn.proj.weight", blk.Proj), projB: put(p+"attn.proj.bias", blk.Proj.B),
			norm2W: put(p+"norm2.weight", blk.Norm2.W), norm2B: put(p+"norm2.bias", blk.Norm2.B),
			fc1W: linear(p+"mlp.fc1.weight", blk.FC1), fc1B: put(p+"mlp.fc1.bias", blk.FC1.B),
			fc2W: linear(p+"mlp.fc2.weight", blk.FC2), fc2B: put(p+"mlp.fc2.bias", blk.FC2.B),
		})
	}
	w.normW = put("norm.weight", m.Norm.W)
	w.normB = put("norm.bias", m.Norm.B)
	w.headW = put("head.weight", m.Head.Weights())
	w.headB = put("head.bias", m.Head.B)
	if m.Config.DistToken {
		half := func(v []float32) []float32 {
			out := make([]float32, len(v))
			for i, x := range v {
				out[i] = x / 2
			}
			return out
		}
		w.halfHeadCLSW = put("head_cls.weight/2", half(m.HeadCLS.Weights()))
		w.halfHeadCLSB = put("head_cls.bias/2", half(m.HeadCLS.B))
		w.halfHeadDistW = put("head_dist.weight/2", half(m.HeadDist.Weights()))
		w.halfHeadDistB = put("head_dist.bias/2", half(m.HeadDist.B))
	}
	if en := m.Normalize; en != nil {
		w.unitProjW = put("embed_norm.proj.weight", en.Proj.Weights())
		w.unitProjB = put("embed_norm.proj.bias", en.Proj.B)
		if err == nil { // copied into each plan's "lens_aux" buffer: CopySrc too
			w.unitBias, err = upload(d, "embed_norm.class_bias", f32bytes(en.ClassBias), wgpu.BufferUsageStorage|wgpu.BufferUsageCopySrc)
			if w.unitBias != nil {
				w.all = append(w.all, w.unitBias)
			}
		}
	}
	if err != nil {
		w.release()
		return nil, err
	}
	return w, nil
}

func (w *weights) release() {
	for _, b := range w.all {
		b.b.Destroy()
		b.b.Release()
	}
	w.all = nil
}

// optional returns a view of b, or nil when the tensor is absent (no bias).
func optional(b *buf) *view {
	if b == nil {
		return nil
	}
	v := whole(b)
	return &v
}
