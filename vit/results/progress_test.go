package results

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestProgressPlainLines(t *testing.T) {
	var buf bytes.Buffer
	p := NewProgress(&buf, "extract", 4550, 1200) // a buffer is not a terminal
	p.every = 0
	time.Sleep(5 * time.Millisecond) // a nonzero rate
	p.Add(100)
	p.Close()
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 || lines[0] != "extract: resuming at 1200/4550 images" {
		t.Fatalf("output:\n%s", buf.String())
	}
	line := regexp.MustCompile(`^extract: 1300/4550 images, [0-9.]+ img/s, ETA [0-9hms.]+$`)
	if !line.MatchString(lines[1]) {
		t.Errorf("progress line %q", lines[1])
	}
}

func TestProgressBar(t *testing.T) {
	var buf bytes.Buffer
	p := newProgress(&buf, "extract", 10, 0, true)
	p.Add(10)
	p.Close()
	if out := buf.String(); !strings.Contains(out, "extract") || !strings.Contains(out, "10/10") {
		t.Errorf("bar output %q", out)
	}
}
