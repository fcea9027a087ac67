// Package shaders holds the WGSL compute kernels of the WebGPU backend, one
// file per op, embedded so the native binary and the browser build carry the
// same source. The pure-Go ops in package vit are the oracle for every one.
package shaders

import (
	"cmp"
	"embed"
	"fmt"
	"slices"
	"strings"
)

//go:embed *.wgsl
var files embed.FS

// includePrefix marks a line that Source replaces with another file's text.
// It is a WGSL comment, so each file still reads (and lints) on its own.
const includePrefix = "//#include "

// A kernel that includes weightsF32 (the tiled matmuls) has an f16 twin, its
// name + F16Suffix: the same source with weightsF16 included instead (same
// tile, weights stored as packed halves).
const (
	F16Suffix  = "_f16"
	weightsF32 = "matmul_weights_f32"
	weightsF16 = "matmul_weights_f16"
)

// Names lists the kernels (files with a compute entry point `main`, and the
// f16 twins), sorted. Helper files that only hold functions for inclusion
// are left out.
func Names() []string {
	entries, _ := files.ReadDir(".")
	var names []string
	for _, e := range entries {
		name := strings.TrimSuffix(e.Name(), ".wgsl")
		text, _ := files.ReadFile(e.Name())
		if strings.Contains(string(text), "@compute") {
			names = append(names, name)
			if hasF16Twin(string(text)) {
				names = append(names, name+F16Suffix)
			}
		}
	}
	slices.Sort(names)
	return names
}

func hasF16Twin(text string) bool {
	return strings.Contains(text, includePrefix+weightsF32+".wgsl")
}

// Source returns the WGSL of kernel name (without ".wgsl"), with include
// lines expanded. It panics on an unknown name: the set is fixed at build
// time, so a miss is a programming error, not an input error.
func Source(name string) string {
	var swap map[string]string
	if base, ok := strings.CutSuffix(name, F16Suffix); ok {
		if text, err := files.ReadFile(base + ".wgsl"); err == nil && hasF16Twin(string(text)) {
			name, swap = base, map[string]string{weightsF32: weightsF16}
		}
	}
	src, err := expand(name, map[string]bool{}, swap)
	if err != nil {
		panic(err)
	}
	return src
}

// expand inlines name's includes, each included file replaced by swap's
// entry for it if any.
func expand(name string, seen map[string]bool, swap map[string]string) (string, error) {
	if seen[name] {
		return "", fmt.Errorf("shaders: %s is included twice", name)
	}
	seen[name] = true
	text, err := files.ReadFile(name + ".wgsl")
	if err != nil {
		return "", fmt.Errorf("shaders: no kernel %q", name)
	}
	var b strings.Builder
	for line := range strings.Lines(string(text)) {
		if inc, ok := strings.CutPrefix(strings.TrimSpace(line), includePrefix); ok {
			inc = strings.TrimSuffix(strings.TrimSpace(inc), ".wgsl")
			sub, err := expand(cmp.Or(swap[inc], inc), seen, swap)
			if err != nil {
				return "", err
			}
			b.WriteString(sub)
			b.WriteString("\n")
			continue
		}
		b.WriteString(line)
	}
	return b.String(), nil
}
