package gpu

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"vitlens/vit"
	"vitlens/vit/lens"
)

// Report is what Profile measured: per batch size, the time and throughput of
// each kind of kernel and the end-to-end time per image. Numbers from a
// software adapter (lavapipe, SwiftShader) say nothing about GPU speed.
type Report struct {
	Device  string
	Model   string
	Request string
	Batches []BatchProfile
	// PeakTFLOPS is the device's fp32 peak when known (see PeakFP32), for
	// the per-op share of peak; 0 leaves that column out.
	PeakTFLOPS float64
}

// fp32Peaks are dense fp32 (non-tensor-core) peaks from NVIDIA's data
// sheets, matched against the adapter description in order.
var fp32Peaks = []struct {
	name   string
	tflops float64
}{{"H200", 67}, {"H100 PCIe", 51}, {"H100", 67}, {"A100", 19.5}, {"L40S", 91.6}, {"RTX 4090", 82.6}}

// PeakFP32 is the fp32 peak of a known GPU named in desc (TFLOP/s), or 0.
func PeakFP32(desc string) float64 {
	for _, p := range fp32Peaks {
		if strings.Contains(desc, p.name) {
			return p.tflops
		}
	}
	return 0
}

// BatchProfile is one batch size's measurements.
type BatchProfile struct {
	Batch int
	Ops   []OpProfile
	// Kernels is one replay of the batch's recorded commands without upload
	// or readback (all ops in one submission).
	Kernels time.Duration
	// PerImage is Analyze's wall time per image: upload, forward, lens,
	// readback and result assembly.
	PerImage time.Duration
	// Timing says where the per-op times come from: timestamp queries
	// around every step of one replay, or (without timestamp-query) each op
	// replayed alone in a submission of its own, timed on the CPU.
	Timing string
}

// OpProfile is one kind of op within a batch (e.g. every qkv matmul).
type OpProfile struct {
	Op         string
	Kernels    []string      // the kernels its dispatches ran (a matmul's variant)
	Dispatches int           // per batch
	Time       time.Duration // per batch, all its dispatches
	GFLOP      float64       // per batch
}

// GFLOPS is the op's throughput (0 when it does no arithmetic to speak of).
func (o OpProfile) GFLOPS() float64 {
	if o.Time <= 0 {
		return 0
	}
	return o.GFLOP / o.Time.Seconds()
}

func (r Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "device: %s\nmodel: %s\nrequest: %s\n", r.Device, r.Model, r.Request)
	if r.PeakTFLOPS > 0 {
		fmt.Fprintf(&b, "fp32 peak: %.1f TFLOP/s\n", r.PeakTFLOPS)
	}
	for _, bp := range r.Batches {
		fmt.Fprintf(&b, "\nbatch %d: %.3f ms per image end to end (%.1f images/s); kernels %.3f ms per batch\nper-op times: %s\n",
			bp.Batch, ms(bp.PerImage), 1/bp.PerImage.Seconds(), ms(bp.Kernels), bp.Timing)
		w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
		peak := ""
		if r.PeakTFLOPS > 0 {
			peak = "% of peak	"
		}
		fmt.Fprintln(w, "op	kernel	dispatches	ms/batch	GFLOP	GFLOP/s	"+peak)
		for _, o := range bp.Ops {
			fmt.Fprintf(w, "%s	%s	%d	%.3f	%.4g	%.1f	", o.Op, strings.Join(o.Kernels, ","), o.Dispatches, ms(o.Time), o.GFLOP, o.GFLOPS())
			if r.PeakTFLOPS > 0 {
				fmt.Fprintf(w, "%.1f	", 100*o.GFLOPS()/(1000*r.PeakTFLOPS))
			}
			fmt.Fprintln(w)
		}
		w.Flush()
		if share, ok := bp.share("lens"); ok {
			fmt.Fprintf(&b, "lens: %.1f%% of the batch's op time\n", 100*share)
		}
	}
	return b.String()
}

// share is the fraction of the batch's summed op time spent in op.
func (bp BatchProfile) share(op string) (float64, bool) {
	var total, part time.Duration
	found := false
	for _, o := range bp.Ops {
		total += o.Time
		if o.Op == op {
			part, found = part+o.Time, true
		}
	}
	if !found || total <= 0 {
		return 0, false
	}
	return float64(part) / float64(total), true
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// ProfileRequest is what Profile runs: the full lens (all sites, top-5)
// against each image's own prediction, the heaviest common request.
var ProfileRequest = lens.Request{Sites: vit.AllSites(), TopK: 5}

// Profile opens a backend for m and profiles it (see Backend.Profile) with
// ProfileRequest; `vitlens bench --backend gpu` prints its String.
func Profile(m *vit.Model, batches []int, reps int) (Report, error) {
	b, err := New(m, Options{})
	if err != nil {
		return Report{}, err
	}
	defer b.Close()
	return b.Profile(batches, reps, ProfileRequest)
}

// Profile times req on random images at each batch size, reps times each
// (after one warm-up that compiles the plan). Per-op times come from
// replaying only that op's dispatches reps times in one submission.
func (b *Backend) Profile(batches []int, reps int, req lens.Request) (Report, error) {
	c := b.model.Config
	reps = max(reps, 1)
	r := Report{
		Device: b.Name(),
		Model: fmt.Sprintf("%dx%d/%d, dim %d, depth %d, heads %d, mlp %d, %d classes, %d tokens",
			c.ImageSize, c.ImageSize, c.PatchSize, c.Dim, c.Depth, c.Heads, c.MLPDim, c.Classes, c.NumTokens()),
		Request:    fmt.Sprintf("sites %v, top-%d, edit %q", req.Sites, req.TopK, req.Edit),
		PeakTFLOPS: PeakFP32(b.d.desc),
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, batch := range batches {
		images := make([]*vit.Tensor, batch)
		for i := range images {
			images[i] = vit.NewTensor(c.Channels, c.ImageSize, c.ImageSize)
			for j := range images[i].Data {
				images[i].Data[j] = float32(rng.NormFloat64())
			}
		}
		if _, err := b.Analyze(images, req); err != nil { // compiles the plan
			return r, err
		}
		start := time.Now()
		for range reps {
			if _, err := b.Analyze(images, req); err != nil {
				return r, err
			}
		}
		bp := BatchProfile{Batch: batch, PerImage: time.Since(start) / time.Duration(reps*batch)}
		key := requestKey(req, c.NumTokens())
		size, err := b.batchSize(key, req.Sites, batch)
		if err != nil {
			return r, err
		}
		if size != batch {
			bp.Batch = size // Analyze split it; report the submissions' size
		}
		key.batch = size
		if err := b.profileOps(key, req.Sites, reps, &bp); err != nil {
			return r, err
		}
		r.Batches = append(r.Batches, bp)
	}
	return r, nil
}

func (b *Backend) profileOps(key planKey, sites []vit.Site, reps int, bp *BatchProfile) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	pl, err := b.planFor(key, sites)
	if err != nil {
		return err
	}
	var ops []string
	for _, s := range pl.prog.steps {
		name := opName(&s)
		if !slices.Contains(ops, name) {
			ops = append(ops, name)
		}
	}
	timeSteps := func(sel func(*step) bool) (time.Duration, error) {
		enc, err := b.d.dev.CreateCommandEncoder(nil)
		if err != nil {
			return 0, err
		}
		for range reps {
			if err := pl.prog.encode(enc, sel, retarget{}); err != nil {
				enc.Release()
				return 0, err
			}
		}
		cmd, err := enc.Finish(nil)
		enc.Release()
		if err != nil {
			return 0, err
		}
		b.d.wait()
		start := time.Now()
		b.d.queue.Submit(cmd)
		b.d.wait()
		cmd.Release()
		return time.Since(start) / time.Duration(reps), b.d.check()
	}
	if bp.Kernels, err = timeSteps(func(s *step) bool { return s.k != nil }); err != nil {
		return err
	}
	for _, op := range ops {
		o := OpProfile{Op: op}
		for i := range pl.prog.steps {
			if s := &pl.prog.steps[i]; opName(s) == op {
				o.Dispatches++
				o.GFLOP += s.flops / 1e9
				if s.k != nil && !slices.Contains(o.Kernels, s.k.name) {
					o.Kernels = append(o.Kernels, s.k.name)
				}
			}
		}
		bp.Ops = append(bp.Ops, o)
	}
	if b.d.timestamps {
		times, period, err := b.timestampSteps(pl, reps)
		if err == nil {
			bp.Timing = fmt.Sprintf("timestamp-query, one replay with a timestamp between every step (%.3f ns per tick, calibrated against the replay's wall time)", period)
			for i := range bp.Ops {
				bp.Ops[i].Time = times[bp.Ops[i].Op]
			}
			return nil
		}
		bp.Timing = fmt.Sprintf("timestamp queries failed (%v); ", err)
	}
	bp.Timing += "each op replayed alone in its own submission, timed on the CPU"
	for i := range bp.Ops {
		op := bp.Ops[i].Op
		if bp.Ops[i].Time, err = timeSteps(func(s *step) bool { return opName(s) == op }); err != nil {
			return err
		}
	}
	return nil
}

// opName groups steps for profiles: dispatches by op, copies together.
func opName(s *step) string {
	if s.k == nil {
		return "copies"
	}
	return s.op
}
