//go:build !js

package gpu

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/cogentcore/webgpu/wgpu"
)

// maxTimestamps caps one profile's query set (wgpu allows 8192 queries).
const maxTimestamps = 4096

// timestampSteps replays the plan reps times in one submission with a
// timestamp before every step and after the last, and returns each op's
// device time per replay. This binding exposes no timestamp period, so the
// tick length is calibrated as the submission's wall time over its tick
// span (1 ns per tick on NVIDIA and on lavapipe; the wall time includes the
// submission's start, so the figure errs a little high).
func (b *Backend) timestampSteps(pl *plan, reps int) (map[string]time.Duration, float64, error) {
	steps := pl.prog.steps
	per := len(steps) + 1
	reps = max(1, min(reps, maxTimestamps/per))
	count := uint32(reps * per)
	qs, err := b.d.dev.CreateQuerySet(&wgpu.QuerySetDescriptor{Label: "profile", Type: wgpu.QueryTypeTimestamp, Count: count})
	if err != nil {
		return nil, 0, err
	}
	defer qs.Release()
	resolved, err := newStorage(b.d, "timestamps", uint64(count)*8, wgpu.BufferUsageQueryResolve|wgpu.BufferUsageCopySrc)
	if err != nil {
		return nil, 0, err
	}
	defer freeBuf(resolved)
	rb, err := newStorage(b.d, "timestamps (readback)", uint64(count)*8, wgpu.BufferUsageMapRead|wgpu.BufferUsageCopyDst)
	if err != nil {
		return nil, 0, err
	}
	defer freeBuf(rb)
	enc, err := b.d.dev.CreateCommandEncoder(nil)
	if err != nil {
		return nil, 0, err
	}
	defer enc.Release()
	q := uint32(0)
	for range reps {
		for i := range steps {
			if err := enc.WriteTimestamp(qs, q); err != nil {
				return nil, 0, err
			}
			q++
			only := &steps[i]
			if err := pl.prog.encode(enc, func(s *step) bool { return s == only }, retarget{}); err != nil {
				return nil, 0, err
			}
		}
		if err := enc.WriteTimestamp(qs, q); err != nil {
			return nil, 0, err
		}
		q++
	}
	if err := enc.ResolveQuerySet(qs, 0, count, resolved.b, 0); err != nil {
		return nil, 0, err
	}
	if err := enc.CopyBufferToBuffer(resolved.b, 0, rb.b, 0, uint64(count)*8); err != nil {
		return nil, 0, err
	}
	cmd, err := enc.Finish(nil)
	if err != nil {
		return nil, 0, err
	}
	defer cmd.Release()
	b.d.wait()
	start := time.Now()
	b.d.queue.Submit(cmd)
	b.d.wait()
	wall := time.Since(start)
	raw, err := b.d.mapRead(rb.b, uint64(count)*8)
	if err != nil {
		return nil, 0, err
	}
	tick := func(i int) uint64 { return binary.LittleEndian.Uint64(raw[8*i:]) }
	ticks := map[string]uint64{}
	span := uint64(0)
	for r := range reps {
		first := r * per
		for i := range steps {
			t0, t1 := tick(first+i), tick(first+i+1)
			if t1 < t0 {
				return nil, 0, fmt.Errorf("timestamps out of order (%d after %d)", t1, t0)
			}
			ticks[opName(&steps[i])] += t1 - t0
		}
		span += tick(first+len(steps)) - tick(first)
	}
	if span == 0 {
		return nil, 0, errors.New("the device wrote no timestamps")
	}
	period := float64(wall.Nanoseconds()) / float64(span)
	out := map[string]time.Duration{}
	for op, t := range ticks {
		out[op] = time.Duration(float64(t) * period / float64(reps))
	}
	return out, period, nil
}
