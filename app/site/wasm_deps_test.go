package site

import (
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// app.wasm is the first load: packages only the command line needs (the
// results folder's writers, its S3 client, Parquet) must not creep into it
// through a shared package. They once did, through vit/activations, and
// added 0.8 MB brotli.
func TestAppWasmLeavesOutNativeOnlyPackages(t *testing.T) {
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	cmd := exec.Command(goBin, "list", "-deps", "vitlens/app/wasm")
	cmd.Env = append(cmd.Environ(), "GOOS=js", "GOARCH=wasm")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for _, pkg := range strings.Fields(string(out)) {
		for _, banned := range []string{"vitlens/vit/results", "github.com/minio/", "github.com/parquet-go/"} {
			if strings.HasPrefix(pkg, banned) {
				t.Errorf("app.wasm imports %s", pkg)
			}
		}
	}
}
