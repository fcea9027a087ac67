package gpu

import (
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/cogentcore/webgpu/wgpu"
)

// device is an open WebGPU device plus what the backend needs to know about
// it. Opening it is the platform-specific part (device_native.go, device_js.go);
// everything else is shared by the native and the browser builds.
type device struct {
	dev    *wgpu.Device
	queue  *wgpu.Queue
	desc   string // adapter description for Name()
	limits wgpu.Limits
	// timestamps: the device was opened with timestamp-query (profiles time
	// each op on the device); shaderF16: the adapter advertises shader-f16.
	timestamps, shaderF16 bool
	// release frees the device and whatever the platform opened with it.
	release        func()
	platformDevice // what only one platform needs (the browser's GPUDevice)

	mu   sync.Mutex
	lost string // non-empty once the device is lost
}

// errNoAdapter is wrapped by every "no adapter" failure, so callers (the
// CLI's --backend auto) can tell "no GPU here" from real errors.
var errNoAdapter = errors.New("no WebGPU adapter available")

// ErrNoAdapter reports whether err (from New) means no WebGPU adapter exists
// here, as opposed to a broken one: the CLI's --backend auto then uses the CPU.
func ErrNoAdapter(err error) bool { return errors.Is(err, errNoAdapter) }

func (d *device) markLost(reason string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.lost == "" {
		d.lost = reason
	}
}

// check returns an error once the device is lost, so later calls fail clearly
// instead of waiting on a queue that will never finish.
func (d *device) check() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.lost != "" {
		return fmt.Errorf("gpu: device lost (%s); create a new backend or use the CPU", d.lost)
	}
	return nil
}

// describeAdapter joins the informative parts of an adapter's info. Native
// wgpu puts the useful text in DriverDescription (e.g. "llvmpipe (LLVM 15,
// 256 bits)") and a PCI id in Name.
func describeAdapter(name, driver, vendor, arch, kind, backend string) string {
	var parts []string
	add := func(s string) {
		s = strings.TrimSpace(s)
		if s == "" || isHexID(s) || strings.EqualFold(s, "unknown") || strings.EqualFold(s, "undefined") {
			return
		}
		for _, p := range parts {
			if strings.Contains(p, s) {
				return
			}
		}
		parts = append(parts, s)
	}
	add(driver)
	add(name)
	add(vendor)
	add(arch)
	desc := strings.Join(parts, " ")
	var tags []string
	for _, t := range []string{backend, kind} {
		t = strings.TrimSpace(strings.ToLower(t))
		if t != "" && t != "unknown" && t != "undefined" {
			tags = append(tags, t)
		}
	}
	if desc == "" {
		desc = "unnamed adapter"
	}
	if len(tags) > 0 {
		desc += " (" + strings.Join(tags, ", ") + ")"
	}
	return desc
}

// isHexID matches the bare PCI-style ids ("0x0", "0x10005") wgpu reports as
// device names on some drivers: noise in a description.
func isHexID(s string) bool {
	rest, ok := strings.CutPrefix(strings.ToLower(s), "0x")
	if !ok || rest == "" {
		return false
	}
	return strings.Trim(rest, "0123456789abcdef") == ""
}
