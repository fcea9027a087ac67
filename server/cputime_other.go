//go:build !unix

package main

import "time"

// processCPUTime is not measured here (0): `vitlens bench` prints wall time only.
func processCPUTime() time.Duration { return 0 }
