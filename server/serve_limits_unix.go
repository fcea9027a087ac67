//go:build unix

package main

import "syscall"

// maxConns is the concurrent-connection cap under the open-file limit (Go
// raises the soft limit to the hard one at start on Linux and macOS).
func maxConns() int {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil || rl.Cur > 1<<20 {
		return 1 << 16
	}
	return max(int(rl.Cur)-fdReserve, 8)
}
