package results

import (
	"errors"
	"io/fs"
	"strings"
	"testing"
)

// putNew never replaces a file: the second of two creates gets fs.ErrExist
// and the first one's bytes stay.
func TestPutNewRefusesExisting(t *testing.T) {
	st := dirStore(t.TempDir())
	if err := st.putNew("a/manifest.json", []byte("first")); err != nil {
		t.Fatal(err)
	}
	if err := st.putNew("a/manifest.json", []byte("second")); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("second putNew: %v, want fs.ErrExist", err)
	}
	if b, err := st.get("a/manifest.json"); err != nil || string(b) != "first" {
		t.Fatalf("after the refused putNew: %q, %v", b, err)
	}
	if files, _, _ := st.list("a"); len(files) != 1 {
		t.Errorf("temporary files left: %v", files)
	}
}

func TestParseBucketURL(t *testing.T) {
	for _, c := range []struct{ in, bucket, prefix, err string }{
		{"s3://b/run/shard-0/", "b", "run/shard-0", ""},
		{"s3://b", "b", "", ""},
		{"s3://b/", "b", "", ""},
		{"s3:///x", "", "", "names no bucket"},
		{"s3://b/a//c", "", "", "empty folder name"},
		{"/local/dir", "", "", "not an s3:// URL"},
	} {
		b, p, err := ParseBucketURL(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: error %v, want %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || b != c.bucket || p != c.prefix {
			t.Errorf("%s: %q %q %v, want %q %q", c.in, b, p, err, c.bucket, c.prefix)
		}
	}
}
