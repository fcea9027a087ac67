package gpu

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/cogentcore/webgpu/wgpu"

	"vitlens/shaders"
)

// kernel is one compiled WGSL compute shader: binding 0 is its uniform
// parameter block, bindings 1.. its storage buffers.
type kernel struct {
	name     string
	writable []bool // per storage binding 1..n: read_write (true) or read
	layout   *wgpu.BindGroupLayout
	pipeLay  *wgpu.PipelineLayout
	module   *wgpu.ShaderModule
	pipeline *wgpu.ComputePipeline
}

// storageBinding matches a storage binding's declaration. It is compiled
// on first use (a device's first pipeline), not at program start: the web
// page and its engine's worker start this package without opening a device.
var storageBinding = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`@binding\((\d+)\)\s*var<storage,\s*(read_write|read)>`)
})

// storageBindings reads the storage bindings' access modes from the WGSL, so
// the explicit bind group layouts (the browser needs them) cannot drift from
// the shaders. They may be declared in any order (the tiled matmuls include
// their weights' binding 2 from a separate file) but must number 1, 2, ...
// without gaps.
func storageBindings(name, src string) ([]bool, error) {
	found := storageBinding().FindAllStringSubmatch(src, -1)
	writable := make([]bool, len(found))
	seen := make([]bool, len(found))
	for _, m := range found {
		i, _ := strconv.Atoi(m[1])
		if i < 1 || i > len(found) || seen[i-1] {
			return nil, fmt.Errorf("gpu: shader %s: storage binding %d repeated or out of range (bindings must be 1, 2, ..., %d)", name, i, len(found))
		}
		seen[i-1], writable[i-1] = true, m[2] == "read_write"
	}
	return writable, nil
}

// shaderConsts reads a WGSL source's integer constants (`const NAME: u32 =
// 64u;` at the start of a line), the way storageBindings reads its bindings:
// tile sizes and limits are written once, in the shader. It scans lines
// rather than matching a regular expression: the page pays for it at start.
func shaderConsts(src string) map[string]int {
	consts := map[string]int{}
	for line := range strings.Lines(src) {
		rest, ok := strings.CutPrefix(line, "const")
		if !ok || rest == "" || (rest[0] != ' ' && rest[0] != '\t') {
			continue
		}
		name, rest, ok := strings.Cut(rest, ":")
		typ, rest, ok2 := strings.Cut(rest, "=")
		value, _, ok3 := strings.Cut(rest, ";")
		name, typ, value = strings.TrimSpace(name), strings.TrimSpace(typ), strings.TrimSpace(value)
		digits, ok4 := strings.CutSuffix(value, "u")
		if !ok || !ok2 || !ok3 || !ok4 || typ != "u32" || !isWord(name) || digits == "" || strings.Trim(digits, "0123456789") != "" {
			continue
		}
		consts[name], _ = strconv.Atoi(digits)
	}
	return consts
}

// isWord is regexp's \w+: letters, digits and underscores.
func isWord(s string) bool {
	for _, r := range s {
		if !(r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return false
		}
	}
	return s != ""
}

// kernelConsts holds the constants of each kernel read so far. A kernel's
// source is read on first use, not every kernel's at program start: the web
// page, which opens a device only in its engine's worker, would pay for
// expanding and scanning them all.
var kernelConsts struct {
	mu  sync.Mutex
	all map[string]map[string]int
}

func constsOf(kernel string) map[string]int {
	kernelConsts.mu.Lock()
	defer kernelConsts.mu.Unlock()
	if kernelConsts.all == nil {
		kernelConsts.all = map[string]map[string]int{}
	}
	c, ok := kernelConsts.all[kernel]
	if !ok {
		c = shaderConsts(shaders.Source(kernel))
		kernelConsts.all[kernel] = c
	}
	return c
}

// shaderConst is the constant name of a kernel. A missing one is a
// programming error caught by the tests (TestHostReadsKernelGeometry), so
// it panics rather than returning an error every dispatch would check.
func shaderConst(kernel, name string) int {
	v, ok := constsOf(kernel)[name]
	if !ok {
		panic(fmt.Sprintf("gpu: %s.wgsl declares no `const %s: u32`", kernel, name))
	}
	return v
}

// Kernel geometry the host needs, from the shaders' own constants, so the
// dispatch sizes and the limits checked here cannot drift from the WGSL.
var (
	matmulTileRows = shaderConst("matmul", "BM")    // output rows per workgroup
	matmulTileCols = shaderConst("matmul", "BN")    // output columns per workgroup
	attnTileQuery  = shaderConst("attention", "TQ") // queries per workgroup
	maxHeadDim     = 4 * shaderConst("attention", "SLOTS")
	flashTileQuery = shaderConst("flash_attention", "TQ")
	// flashMaxHeadDim is the widest head flash_attention.wgsl holds in
	// registers; wider ones run on attention.wgsl.
	flashMaxHeadDim = 4 * shaderConst("flash_attention", "SLOTS")
	lensTileRows    = shaderConst("lens", "TR") // readout rows per workgroup
	// maxLensTopK is the longest top-k list the lens kernel keeps per row.
	maxLensTopK = shaderConst("lens", "KMAX")
	lensOutHead = shaderConst("lens", "OUT_HEAD") // words of a readout row before its top-k
)

// elementGroups is the workgroup grid of a kernel that gives each of count
// elements one invocation, WG per workgroup.
func elementGroups(kernel string, count int) [3]uint32 {
	return groups1D(ceilDiv(count, shaderConst(kernel, "WG")))
}

// kernels is the pipeline cache: each shader is compiled once per device.
type kernels struct {
	dev *device
	mu  sync.Mutex
	by  map[string]*kernel
	// dummy and dummyRW fill bindings a dispatch does not use (no bias, no
	// [CLS], probabilities not tapped): WebGPU wants every binding bound.
	dummy, dummyRW *buf
}

// init makes the dummy buffers and compiles every kernel.
func (ks *kernels) init() error {
	var err error
	usage := wgpu.BufferUsageStorage
	if ks.dummy, err = upload(ks.dev, "unused", make([]byte, 16), usage); err != nil {
		return err
	}
	if ks.dummyRW, err = upload(ks.dev, "unused (writable)", make([]byte, 16), usage); err != nil {
		return err
	}
	for _, name := range shaders.Names() {
		if _, err := ks.get(name); err != nil {
			return err
		}
	}
	return nil
}

func (ks *kernels) get(name string) (*kernel, error) {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	if k, ok := ks.by[name]; ok {
		return k, nil
	}
	k, err := ks.compile(name)
	if err != nil {
		return nil, err
	}
	if ks.by == nil {
		ks.by = map[string]*kernel{}
	}
	ks.by[name] = k
	return k, nil
}

func (ks *kernels) compile(name string) (*kernel, error) {
	src := shaders.Source(name)
	writable, err := storageBindings(name, src)
	if err != nil {
		return nil, err
	}
	if len(writable) > 8 {
		return nil, fmt.Errorf("gpu: shader %s uses %d storage buffers; browsers allow 8", name, len(writable))
	}
	dev := ks.dev.dev
	k := &kernel{name: name, writable: writable}
	entries := []wgpu.BindGroupLayoutEntry{{
		Binding:    0,
		Visibility: wgpu.ShaderStageCompute,
		Buffer:     wgpu.BufferBindingLayout{Type: wgpu.BufferBindingTypeUniform},
	}}
	for i, w := range writable {
		t := wgpu.BufferBindingTypeReadOnlyStorage
		if w {
			t = wgpu.BufferBindingTypeStorage
		}
		entries = append(entries, wgpu.BindGroupLayoutEntry{
			Binding:    uint32(i + 1),
			Visibility: wgpu.ShaderStageCompute,
			Buffer:     wgpu.BufferBindingLayout{Type: t},
		})
	}
	if k.module, err = dev.CreateShaderModule(&wgpu.ShaderModuleDescriptor{
		Label:          name + ".wgsl",
		WGSLDescriptor: &wgpu.ShaderModuleWGSLDescriptor{Code: src},
	}); err != nil {
		return nil, fmt.Errorf("gpu: compiling %s.wgsl: %w", name, err)
	}
	if k.layout, err = dev.CreateBindGroupLayout(&wgpu.BindGroupLayoutDescriptor{Label: name, Entries: entries}); err != nil {
		return nil, fmt.Errorf("gpu: bind group layout of %s: %w", name, err)
	}
	if k.pipeLay, err = dev.CreatePipelineLayout(&wgpu.PipelineLayoutDescriptor{
		Label: name, BindGroupLayouts: []*wgpu.BindGroupLayout{k.layout},
	}); err != nil {
		return nil, fmt.Errorf("gpu: pipeline layout of %s: %w", name, err)
	}
	if k.pipeline, err = ks.dev.createPipeline(k.pipeLay, k.module); err != nil {
		return nil, fmt.Errorf("gpu: pipeline of %s: %w", name, err)
	}
	return k, nil
}

func (ks *kernels) release() {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	for _, k := range ks.by {
		k.pipeline.Release()
		k.pipeLay.Release()
		k.layout.Release()
		k.module.Release()
	}
	ks.by = nil
	freeBuf(ks.dummy)
	freeBuf(ks.dummyRW)
	ks.dummy, ks.dummyRW = nil, nil
}
