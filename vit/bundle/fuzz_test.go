package bundle

import (
	"strings"
	"testing"
)

// FuzzParseClassNames: a --classes file (text, JSON list, id2label or a
// whole config.json) of any content gives names or an error naming it.
func FuzzParseClassNames(f *testing.F) {
	for _, s := range []string{"cat\ndog\n", `["a", "b"]`, `{"1": "b", "0": "a"}`,
		`{"id2label": {"0": "x"}}`, `{"0": "a", "2": "b"}`, `{"-1": "a"}`, "\r\n", `{"id2label": 5}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		names, err := ParseClassNames("names.json", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "names.json: ") {
				t.Fatalf("error %q does not name the file", err)
			}
			return
		}
		if len(names) == 0 {
			t.Fatal("no names and no error")
		}
	})
}
