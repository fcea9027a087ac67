package checkpoint

import (
	"archive/zip"
	"bytes"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// pickleZip wraps a pickle as torch.save's archive/data.pkl, deflated (a
// few kilobytes for megabytes of repeated opcodes) or stored as torch does.
func pickleZip(t *testing.T, pkl []byte, method uint16) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := zip.NewWriter(&buf)
	f, err := w.CreateHeader(&zip.FileHeader{Name: "archive/data.pkl", Method: method})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(pkl); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// The hostile pickles of issue 9 (tiny archives that cost gigabytes or
// hours to unpickle naively) are refused with one line naming the file,
// quickly and in little memory. Memory is what the load allocates in all,
// from runtime.MemStats; the time bound is deliberately generous (10 s,
// against about 0.1 s measured) so a loaded machine cannot make the test
// flake, while the quadratic and exhausting parses it guards against took
// 26 s, 3 GB and a fatal out-of-memory crash.
func TestHostilePicklesRefused(t *testing.T) {
	proto := []byte("\x80\x02")
	long := append(append(append([]byte{}, proto...), 'L'), bytes.Repeat([]byte("7"), 4_000_000)...)
	long = append(long, "L\n."...)
	dicts := append(append([]byte{}, proto...), bytes.Repeat([]byte("}"), 20_000_000)...)
	dicts = append(dicts, '.')
	marks := append(append([]byte{}, proto...), bytes.Repeat([]byte("("), 33_000_000)...)
	marks = append(marks, "N."...)
	// Flat MARK/POP_MARK pairs never nest, but each allocates: the opcode
	// budget stops them.
	flat := append(append([]byte{}, proto...), bytes.Repeat([]byte("(1"), 16_000_000)...)
	flat = append(flat, "N."...)
	long4 := append(append([]byte{}, proto...), "\x8b\x00\x00\x10\x00"...) // LONG4 of 1 MiB
	long4 = append(append(long4, make([]byte, 1<<20)...), '.')

	for _, tc := range []struct {
		name string
		file []byte
		want string
	}{
		{"4M-digit LONG", pickleZip(t, long, zip.Deflate), "an integer of more than 4300 digits"},
		{"4M-digit LONG, legacy format", long, "an integer of more than 4300 digits"},
		{"1 MiB LONG4", pickleZip(t, long4, zip.Deflate), "integer"},
		{"20M EMPTY_DICT", pickleZip(t, dicts, zip.Deflate), "more than 262220 opcodes"},
		{"20M EMPTY_DICT, stored", pickleZip(t, dicts, zip.Store), "opcodes"},
		{"33M nested MARKs", pickleZip(t, marks, zip.Deflate), "MARKs nested more than 1000 deep"},
		{"16M flat MARKs", pickleZip(t, flat, zip.Deflate), "opcodes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			start := time.Now()
			m, _, err := LoadBytes("hostile.pth", tc.file, Options{})
			took := time.Since(start)
			runtime.ReadMemStats(&after)
			alloc := after.TotalAlloc - before.TotalAlloc
			t.Logf("%d-byte file refused in %v after allocating %.1f MB: %v", len(tc.file), took, float64(alloc)/1e6, err)
			if err == nil || m != nil {
				t.Fatal("loaded")
			}
			if !strings.HasPrefix(err.Error(), "hostile.pth: ") || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q: want one line naming the file and %q", err, tc.want)
			}
			if alloc > 100e6 {
				t.Errorf("allocated %.1f MB, want under 100 MB", float64(alloc)/1e6)
			}
			if took > 10*time.Second {
				t.Errorf("took %v, want well under a second (10 s allowed for a loaded machine)", took)
			}
		})
	}
}

// The opcode budget's premise: torch.save spends about 40 opcodes per
// tensor (60 allowed here, wrapper dicts and argparse entries included), so
// minPickleOps covers thousands of tensors in a file of any size.
func TestPickleOpsPerTensor(t *testing.T) {
	for _, name := range []string{"timm_wrapped.pth", "tv_legacy.pth", "tv_half_strided.pth"} {
		b, err := os.ReadFile("testdata/" + name)
		if err != nil {
			t.Fatal(err)
		}
		tensors, err := readPyTorch(b)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		pkl := b
		if bytes.HasPrefix(b, []byte("PK")) {
			zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range zr.File {
				if strings.HasSuffix(f.Name, "/data.pkl") {
					pkl, _, err = readRecord(f, maxPickleBytes)
					if err != nil {
						t.Fatal(err)
					}
				}
			}
		} else { // legacy: the object pickle is the fourth
			for range 3 {
				end, err := scanPickle(pkl, minPickleOps)
				if err != nil {
					t.Fatal(err)
				}
				pkl = pkl[end:]
			}
		}
		allowed := 60 * len(tensors)
		if _, err := scanPickle(pkl, allowed); err != nil {
			t.Errorf("%s: %d tensors: %v", name, len(tensors), err)
		}
		if _, err := scanPickle(pkl, 5*len(tensors)); err == nil {
			t.Errorf("%s: under 5 opcodes per tensor: the check above tests nothing", name)
		}
	}
}
