package main

import (
	"fmt"
	"io"
	"runtime"
	"runtime/metrics"
	"time"

	"vitlens/vit/experiment"
	"vitlens/vit/lens"
)

// stageClock times a command's phases in wall and CPU time (`--timings`):
// on a machine shared with other jobs the CPU time counts the work done, the
// wall time also the waiting for a core.
type stageClock struct {
	since    time.Time     // the current phase's start
	cpuSince time.Duration // the process's CPU time then
	laps     []stageLap
}

type stageLap struct {
	name      string
	wall, cpu time.Duration
}

func newStageClock() *stageClock {
	return &stageClock{since: time.Now(), cpuSince: processCPUTime()}
}

// lap ends the phase running since the last lap (or the clock's start).
func (c *stageClock) lap(name string) {
	now, cpu := time.Now(), processCPUTime()
	c.laps = append(c.laps, stageLap{name, now.Sub(c.since), cpu - c.cpuSince})
	c.since, c.cpuSince = now, cpu
}

// printTimings writes where a lens experiment's time went: the clock's
// phases, the runner's stages (wall time of the pipeline's main loop; the
// decoding overlaps it), the CPU backend's forward and lens (summed over
// the images, so over threads) and the garbage collector's CPU time.
func printTimings(w io.Writer, c *stageClock, r *experiment.Runner, st experiment.Stats) {
	fmt.Fprintf(w, "timings (%d threads, %d images):\n", runtime.GOMAXPROCS(0), st.Images)
	var wall, cpu time.Duration
	for _, l := range c.laps {
		fmt.Fprintf(w, "  %-40s %8.2f s wall %8.2f s CPU\n", l.name, l.wall.Seconds(), l.cpu.Seconds())
		wall, cpu = wall+l.wall, cpu+l.cpu
	}
	fmt.Fprintf(w, "  %-40s %8.2f s wall %8.2f s CPU\n", "total", wall.Seconds(), cpu.Seconds())
	if r.Timings != nil {
		for s, d := range r.Timings {
			fmt.Fprintf(w, "    %-38s %8.2f s wall\n", experiment.StageNames[s], d.Seconds())
		}
	}
	fmt.Fprintf(w, "    %-38s %8.2f s wall\n", "finishing the tables", st.Finishing.Seconds())
	if cpu, ok := r.Backend.(*lens.CPU); ok && cpu.Clock != nil {
		fmt.Fprintf(w, "    %-38s %8.2f s, summed over the images\n", "forward", cpu.Clock.Forward().Seconds())
		fmt.Fprintf(w, "    %-38s %8.2f s, summed over the images\n", "lens", cpu.Clock.Lens().Seconds())
	}
	gc := []metrics.Sample{{Name: "/cpu/classes/gc/total:cpu-seconds"}}
	metrics.Read(gc)
	if gc[0].Value.Kind() == metrics.KindFloat64 {
		fmt.Fprintf(w, "  %-40s %8.2f s CPU\n", "of which garbage collection", gc[0].Value.Float64())
	}
}
