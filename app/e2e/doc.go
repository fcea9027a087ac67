// Package e2e drives the web app in headless Chromium (chromedp): the demo
// analysis on WebGPU and on the CPU fallback must equal the native CPU path
// rank for rank; loading models, interventions, exports and offline use are
// exercised through the page as a person would. Screenshots are written to
// build/e2e/ (or $VITLENS_E2E_SHOTS). Without Chromium the tests skip.
package e2e
