//go:build !unix

package vit

// processCPU is 0 where this build cannot read the process's CPU time.
func processCPU() float64 { return 0 }
