package gpu

import (
	"encoding/binary"
	"math"
	"os"
	"sync"
	"testing"

	"github.com/cogentcore/webgpu/wgpu"
)

// Tests run on whatever adapter exists; on the build machines that is Mesa's
// lavapipe (CPU Vulkan): correct, slow, meaningless for speed.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "vitlens-gpu-test-")
	if err == nil {
		// Mesa writes a shader cache under $HOME otherwise.
		os.Setenv("MESA_SHADER_CACHE_DIR", dir)
		if os.Getenv("XDG_RUNTIME_DIR") == "" {
			os.Setenv("XDG_RUNTIME_DIR", dir)
		}
	}
	code := m.Run()
	if dir != "" {
		os.RemoveAll(dir)
	}
	os.Exit(code)
}

// harness is one device shared by the kernel tests.
type harness struct {
	d  *device
	ks *kernels
}

var (
	harnessOnce sync.Once
	harnessVal  *harness
	harnessErr  error
)

func testHarness(t testing.TB) *harness {
	t.Helper()
	harnessOnce.Do(func() {
		d, err := openDevice()
		if err != nil {
			harnessErr = err
			return
		}
		ks := &kernels{dev: d}
		harnessVal, harnessErr = &harness{d: d, ks: ks}, ks.init()
	})
	if harnessErr != nil {
		if ErrNoAdapter(harnessErr) {
			t.Skipf("no WebGPU adapter on this machine (%v): GPU tests skipped; install mesa-vulkan-drivers for a CPU one", harnessErr)
		}
		t.Fatal(harnessErr)
	}
	return harnessVal
}

// prog starts a program whose buffers are freed when the test ends.
func (h *harness) prog(t testing.TB) *program {
	p := newProgram(h.d, h.ks)
	t.Cleanup(p.release)
	return p
}

func (h *harness) in(t testing.TB, p *program, name string, data []float32) view {
	t.Helper()
	b, err := upload(h.d, name, f32bytes(data), wgpu.BufferUsageStorage|wgpu.BufferUsageCopySrc|wgpu.BufferUsageCopyDst)
	if err != nil {
		t.Fatal(err)
	}
	p.owned = append(p.owned, b)
	return whole(b)
}

func (h *harness) inWords(t testing.TB, p *program, name string, data []uint32) view {
	t.Helper()
	raw := make([]byte, 4*len(data))
	for i, w := range data {
		binary.LittleEndian.PutUint32(raw[4*i:], w)
	}
	b, err := upload(h.d, name, raw, wgpu.BufferUsageStorage|wgpu.BufferUsageCopySrc|wgpu.BufferUsageCopyDst)
	if err != nil {
		t.Fatal(err)
	}
	p.owned = append(p.owned, b)
	return whole(b)
}

func (h *harness) out(t testing.TB, p *program, name string, words int) view {
	t.Helper()
	b, err := p.alloc(name, uint64(4*words))
	if err != nil {
		t.Fatal(err)
	}
	return whole(b)
}

// exec runs p once and returns the first words 32-bit words of each view.
func (h *harness) exec(t testing.TB, p *program, outs []view, words []int) [][]byte {
	t.Helper()
	var total uint64
	offs := make([]uint64, len(outs))
	for i := range outs {
		offs[i] = total
		total += uint64(4 * words[i])
	}
	rb, err := newStorage(h.d, "readback", total, wgpu.BufferUsageMapRead|wgpu.BufferUsageCopyDst)
	if err != nil {
		t.Fatal(err)
	}
	p.owned = append(p.owned, rb)
	for i, v := range outs {
		p.copy("readback", v, view{b: rb, off: offs[i]}, uint64(4*words[i]))
	}
	if err := p.finalize(); err != nil {
		t.Fatal(err)
	}
	if err := p.submit(nil, nil, nil); err != nil {
		t.Fatal(err)
	}
	raw, err := h.d.readBuffer(rb.b, total)
	if err != nil {
		t.Fatal(err)
	}
	res := make([][]byte, len(outs))
	for i := range outs {
		res[i] = raw[offs[i] : offs[i]+uint64(4*words[i])]
	}
	return res
}

func bytesF32(b []byte) []float32 {
	out := make([]float32, len(b)/4)
	for i := range out {
		out[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return out
}

func bytesU32(b []byte) []uint32 {
	out := make([]uint32, len(b)/4)
	for i := range out {
		out[i] = binary.LittleEndian.Uint32(b[4*i:])
	}
	return out
}

// errStats compares got with want: normalised MSE Σ(g−w)²/Σw² and max |g−w|.
func errStats(got, want []float32) (nmse, maxAbs float64) {
	if len(got) != len(want) {
		return math.Inf(1), math.Inf(1)
	}
	var num, den float64
	for i := range got {
		d := float64(got[i]) - float64(want[i])
		if math.IsNaN(d) {
			return math.Inf(1), math.Inf(1)
		}
		num += d * d
		den += float64(want[i]) * float64(want[i])
		maxAbs = math.Max(maxAbs, math.Abs(d))
	}
	if den == 0 {
		return num, maxAbs
	}
	return num / den, maxAbs
}
