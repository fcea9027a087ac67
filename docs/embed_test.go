package docs

import (
	"strings"
	"testing"
)

// The web app's explanation card shows this section; it must exist.
func TestMethodSection(t *testing.T) {
	s := MethodSection("Explanation maps")
	if !strings.Contains(s, "Chefer et al.") || strings.Contains(s, "\n## ") {
		t.Fatalf("section: %.200q", s)
	}
	if MethodSection("No such section") != "" {
		t.Fatal("a missing section is not empty")
	}
}
