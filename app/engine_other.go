//go:build !js

package app

// startWorker natively: no workers; the page's engine runs in-process.
func startWorker() remoteEngine { return nil }

// InWorker is false natively: there is no browser worker to serve.
func InWorker() bool { return false }

// ServeEngine is the worker's loop, which only the browser build has.
func ServeEngine() { panic("vitlens: the engine's worker runs in the browser only") }
