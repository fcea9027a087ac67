//go:build unix

package vit

import "syscall"

// processCPU is the CPU time (user + system, all threads) this process has
// used, in seconds: the benchmarks' measure where other jobs share the
// cores and stretch wall time.
func processCPU() float64 {
	var u syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &u) != nil {
		return 0
	}
	return float64(u.Utime.Nano()+u.Stime.Nano()) / 1e9
}
