package vit

import (
	"runtime"
	"sync"
)

// Parallel calls fn(i) for every i in [lo, hi) on at most GOMAXPROCS
// goroutines and waits for all of them. It is the one bounded fan-out of the
// analyses (images of a batch or chunk, probes of a group): each fn(i) must
// write only its own i's results.
func Parallel(lo, hi int, fn func(i int)) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, runtime.GOMAXPROCS(0))
	for i := lo; i < hi; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			fn(i)
		}()
	}
	wg.Wait()
}
