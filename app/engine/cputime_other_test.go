//go:build !unix && !js

package engine

// processCPU is 0 where this build cannot read the process's CPU time.
func processCPU() float64 { return 0 }
