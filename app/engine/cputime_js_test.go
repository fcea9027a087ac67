//go:build js

package engine

import "syscall/js"

// processCPU is the CPU time (user + system, all threads) of the Node
// process running the test, in seconds (process.cpuUsage).
func processCPU() float64 {
	u := js.Global().Get("process").Call("cpuUsage")
	return (u.Get("user").Float() + u.Get("system").Float()) / 1e6
}
