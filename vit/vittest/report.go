package vittest

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// ReportGolden decodes testdata/report/report.json, the original code's
// reporting statistics written by tools/reference/make_report_golden.py,
// into v (each test declares the parts it reads).
func ReportGolden(t testing.TB, v any) {
	t.Helper()
	ref, err := ReferenceDir()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(filepath.Dir(ref), "report", "report.json")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
