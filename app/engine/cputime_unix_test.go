//go:build unix && !js

package engine

import "syscall"

// processCPU is the CPU time (user + system, all threads) this process has
// used, in seconds.
func processCPU() float64 {
	var u syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &u) != nil {
		return 0
	}
	return float64(u.Utime.Nano()+u.Stime.Nano()) / 1e9
}
