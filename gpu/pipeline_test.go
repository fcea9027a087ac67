package gpu

import (
	"reflect"
	"testing"

	"vitlens/vit"
	"vitlens/vit/lens"
)

// Pipelined calls return exactly (bit for bit) what calls collected one at
// a time return: the kernels are the same, only the readback buffer and the
// moment of collection change. Four orders are compared with the unpipelined
// one: the runner's (start call i+1, then wait on call i), all calls started
// before any is collected (slot reuse collects the older ones), one call
// split into several batches, and calls of three plan shapes interleaved so
// that a plan is evicted while its batch is uncollected. The unpipelined
// results are checked against the CPU by TestBackendMatchesCPU's requests.
func TestPipelinedCallsEqualSequential(t *testing.T) {
	m := randomModel(t, cfgCLS, 21)
	b := newBackend(t, m)
	images := vit.RandomImages(cfgCLS, 7, 5)
	T := cfgCLS.NumTokens()
	reqs := []lens.Request{
		{Sites: vit.AllSites(), TopK: 5, Targets: []int{1, 2}},
		{Sites: vit.AllSites(), TopK: 5}, // predicted targets: the deferred lens
		{Sites: []vit.Site{vit.SiteHS}, TopK: 3, Taps: vit.Taps{AttnProbs: true, Values: true}},
		{Sites: []vit.Site{vit.SiteMLP}, TopK: 5, Keep: [][]int{{0, 2, 4, T - 1}, nil}},
	}
	calls := func(r int) ([][]*vit.Tensor, []lens.Request) {
		var ims [][]*vit.Tensor
		var rs []lens.Request
		for i := 0; i+2 <= len(images); i += 2 {
			ims = append(ims, images[i:i+2])
			rs = append(rs, reqs[(r+i/2)%len(reqs)])
		}
		return ims, rs
	}
	for shift := range 2 {
		ims, rs := calls(shift)
		var want [][]*lens.Result
		for i := range ims { // unpipelined: each call collected before the next
			got, err := b.Analyze(ims[i], rs[i])
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, got)
		}
		same := func(order string, i int, got []*lens.Result) {
			t.Helper()
			if !reflect.DeepEqual(got, want[i]) {
				t.Errorf("shift %d, %s: call %d differs from the unpipelined results", shift, order, i)
			}
		}

		var prev lens.Pending
		for i := range ims { // the experiment runner's order
			p, err := b.Start(ims[i], rs[i])
			if err != nil {
				t.Fatal(err)
			}
			if prev != nil {
				got, err := prev.Wait()
				if err != nil {
					t.Fatal(err)
				}
				same("start i+1, wait i", i-1, got)
			}
			prev = p
		}
		got, err := prev.Wait()
		if err != nil {
			t.Fatal(err)
		}
		same("start i+1, wait i", len(ims)-1, got)

		var pending []lens.Pending
		for i := range ims { // all in flight: older ones collected on the way
			p, err := b.Start(ims[i], rs[i])
			if err != nil {
				t.Fatal(err)
			}
			pending = append(pending, p)
		}
		for i, p := range pending {
			got, err := p.Wait()
			if err != nil {
				t.Fatal(err)
			}
			same("all started first", i, got)
		}
		if _, err := pending[0].Wait(); err == nil {
			t.Error("a second Wait on one call gave no error")
		}
	}

	// One call cut into four batches pipelines within itself: the same as
	// its batches as calls of their own, collected one at a time.
	split, err := New(m, Options{MaxBatch: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer split.Close()
	var one []*lens.Result
	for i := 0; i < len(images); i += 2 {
		got, err := split.Analyze(images[i:min(i+2, len(images))], reqs[1])
		if err != nil {
			t.Fatal(err)
		}
		one = append(one, got...)
	}
	got, err := split.Analyze(images, reqs[1])
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, one) {
		t.Error("one call split into pipelined batches differs from its batches run one at a time")
	}
	// Closing with a call still uncollected frees it; its Wait says why.
	p, err := split.Start(images, reqs[1])
	if err != nil {
		t.Fatal(err)
	}
	split.Close()
	if _, err := p.Wait(); err == nil {
		t.Error("Wait after Close gave no error")
	}
}
