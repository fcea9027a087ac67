package bundle

import (
	"bytes"
	"io"
	"strings"
	"testing"
)

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

func TestParseClassNames(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []string
	}{
		{"cat\ndog\n", []string{"cat", "dog"}},
		{"cat\r\ndog", []string{"cat", "dog"}},
		{`["cat", "dog"]`, []string{"cat", "dog"}},
		{`{"1": "dog", "0": "cat"}`, []string{"cat", "dog"}},
		{`{"model_type": "vit", "id2label": {"0": "cat", "1": "dog"}}`, []string{"cat", "dog"}},
	} {
		got, err := ParseClassNames("x", []byte(c.in))
		if err != nil || strings.Join(got, "|") != strings.Join(c.want, "|") {
			t.Errorf("%q: %v, %v", c.in, got, err)
		}
	}
	for _, bad := range []string{"", `{"0": "a", "2": "b"}`, `{"x": "a"}`, `[1, 2]`, `{"0": 5}`} {
		if _, err := ParseClassNames("names.json", []byte(bad)); err == nil || !strings.Contains(err.Error(), "names.json") {
			t.Errorf("%q: want an error naming the file, got %v", bad, err)
		}
	}
}

func TestClassCountMismatch(t *testing.T) {
	_, err := Open("", Options{ClassesFile: "three.txt"})
	if err == nil {
		t.Fatal("a missing classes file must fail")
	}
	data, _ := io.ReadAll(strings.NewReader("a\nb\nc\n"))
	b, err := Demo(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := finish(b.Model, b.Info, Options{ClassesFile: "three.txt"}, data); err == nil || !strings.Contains(err.Error(), "3 class names") {
		t.Fatalf("want a count mismatch error, got %v", err)
	}
	if _, err := Demo(Options{Preset: "nope"}); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("unknown preset: %v", err)
	}
}

// Errors about presets and class names that come from the checkpoint name
// the checkpoint file; a bad --preset names the flag.
func TestErrorsNameTheirFile(t *testing.T) {
	b, err := Demo(Options{})
	if err != nil {
		t.Fatal(err)
	}
	info := b.Info
	info.Path = "m.safetensors"
	info.Metadata = map[string]string{"classes": `["a", "b"]`}
	if _, err := finish(b.Model, info, Options{}, nil); err == nil || !strings.HasPrefix(err.Error(), `m.safetensors metadata "classes": 2 class names`) {
		t.Errorf("metadata class count: %v", err)
	}
	info.Metadata = map[string]string{"preset": "nope"}
	if _, err := finish(b.Model, info, Options{}, nil); err == nil || !strings.HasPrefix(err.Error(), `m.safetensors: metadata "preset": unknown preprocessing preset "nope"`) {
		t.Errorf("metadata preset: %v", err)
	}
	if _, err := finish(b.Model, info, Options{Preset: "nada"}, nil); err == nil || !strings.HasPrefix(err.Error(), `--preset: unknown preprocessing preset "nada"`) {
		t.Errorf("flag preset: %v", err)
	}
}
