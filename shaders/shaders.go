// Package shaders holds the WGSL compute kernels of the WebGPU backend, one
// file per op, embedded so the native binary and the browser build carry the
// same source. The pure-Go ops in package vit are the oracle for every one.
package shaders

import (
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

// Names lists the kernels (files with a compute entry point `main`), sorted.
// Helper files that only hold functions for inclusion are left out.
func Names() []string {
	entries, _ := files.ReadDir(".")
	var names []string
	for _, e := range entries {
		name := strings.TrimSuffix(e.Name(), ".wgsl")
		text, _ := files.ReadFile(e.Name())
		if strings.Contains(string(text), "@compute") {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	return names
}

// Source returns the WGSL of kernel name (without ".wgsl"), with include
// lines expanded. It panics on an unknown name: the set is fixed at build
// time, so a miss is a programming error, not an input error.
func Source(name string) string {
	src, err := expand(name, map[string]bool{})
	if err != nil {
		panic(err)
	}
	return src
}

func expand(name string, seen map[string]bool) (string, error) {
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
			sub, err := expand(strings.TrimSuffix(strings.TrimSpace(inc), ".wgsl"), seen)
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
