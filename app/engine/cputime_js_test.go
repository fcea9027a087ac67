//go:build js

package engine

import (
	"math"
	"syscall/js"
)

// processCPU is the CPU time (user + system, all threads) of the Node
// process running the test, in seconds (process.cpuUsage); NaN in a
// browser, which tells a page no CPU time.
func processCPU() float64 {
	p := js.Global().Get("process")
	if p.IsUndefined() || p.Get("cpuUsage").Type() != js.TypeFunction {
		return math.NaN()
	}
	u := p.Call("cpuUsage")
	return (u.Get("user").Float() + u.Get("system").Float()) / 1e6
}
