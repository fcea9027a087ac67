package main

import (
	"bytes"
	"fmt"
	"image"
	"image/jpeg"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
)

// TestPeakRSSLargeImages (opt-in: VITLENS_RSS=1, about a minute) runs the
// built vitlens binary on eight 64-megapixel JPEGs at 2 and 16 threads and
// prints the peak resident memory of each run, from the child's rusage.
// The full-size pixels in flight are bounded process-wide
// (preprocess.InFlightPixels), so the peak must not grow with the thread
// count; before, it did (2.5 GB at 2 threads, 4.1 GB at 4). VITLENS_RSS_BIN
// measures another binary (an older build, for comparison) instead.
//
//	VITLENS_RSS=1 go test -count=1 -run PeakRSS -v ./server
func TestPeakRSSLargeImages(t *testing.T) {
	if os.Getenv("VITLENS_RSS") == "" {
		t.Skip("opt-in: VITLENS_RSS=1 (builds vitlens, decodes 2x8 64-megapixel images)")
	}
	dir := t.TempDir()
	bin := os.Getenv("VITLENS_RSS_BIN")
	if bin == "" {
		bin = filepath.Join(dir, "vitlens")
		if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
			t.Fatalf("go build: %v\n%s", err, out)
		}
	}
	// One 8192x8192 JPEG (a smooth gradient: a few hundred KB), eight copies.
	const side = 8192
	img := image.NewYCbCr(image.Rect(0, 0, side, side), image.YCbCrSubsampleRatio420)
	for y := range side {
		for x := range side {
			img.Y[y*img.YStride+x] = uint8((x + y) >> 6)
		}
	}
	for i := range img.Cb {
		img.Cb[i], img.Cr[i] = 128, 160
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(dir, "big")
	for i := range 8 {
		p := filepath.Join(root, "c", fmt.Sprintf("%d.jpg", i))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("eight %dx%d JPEGs of %d bytes each", side, side, buf.Len())
	peak := map[int]float64{}
	for _, threads := range []int{2, 16} {
		out := filepath.Join(dir, fmt.Sprintf("out%d", threads))
		cmd := exec.Command(bin, "extract", "--data", "folder", "--root", root, "--out", out, "--quiet")
		cmd.Env = append(os.Environ(), fmt.Sprintf("GOMAXPROCS=%d", threads))
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", cmd.Args, err, b)
		}
		ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
		peak[threads] = float64(ru.Maxrss) * 1024 / 1e6 // Linux reports KiB
		t.Logf("GOMAXPROCS=%2d: peak RSS %.0f MB, %.1f s of CPU", threads, peak[threads],
			float64(ru.Utime.Sec+ru.Stime.Sec)+float64(ru.Utime.Usec+ru.Stime.Usec)/1e6)
	}
	t.Logf("ratio 16/2 threads: %.2f (GOOS %s)", peak[16]/peak[2], runtime.GOOS)
	if os.Getenv("VITLENS_RSS_BIN") == "" {
		if peak[16] > 1.25*peak[2] {
			t.Errorf("peak RSS grows with threads: %.0f MB at 16, %.0f MB at 2", peak[16], peak[2])
		}
		if peak[16] > 1500 {
			t.Errorf("peak RSS %.0f MB at 16 threads: want a bound near one 64-megapixel image in flight", peak[16])
		}
	}
}
