//go:build !unix

package main

// maxConns caps concurrent connections where there is no RLIMIT_NOFILE to
// read (Windows has no per-process descriptor limit of that kind).
func maxConns() int { return 1 << 12 }
