package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"vitlens/vit/results"
	"vitlens/vit/vittest"
)

// The object-storage tests run against a real S3 server on loopback:
// SeaweedFS's `weed`, which `make weed` builds into .cache/weed/ (from the
// separate module tools/seaweedfs, so vitlens's go.mod does not carry its
// dependencies). Outside `make test` they skip when it is missing; `make
// test` sets VITLENS_REQUIRE_S3=1, and then a missing server fails them.

// asVitlens makes the test binary act as the vitlens binary when a test
// starts it as a child (TestMain): a child that can be killed mid-upload
// without building vitlens first.
const asVitlens = "VITLENS_TEST_AS_CLI"

func TestMain(m *testing.M) {
	if os.Getenv(asVitlens) == "1" {
		os.Exit(runMain(os.Args[1:], os.Stdout, os.Stderr))
	}
	code := m.Run()
	s3srv.stop()
	os.Exit(code)
}

// weedServer is the S3 server shared by the tests of this package, started
// by the first test that needs it.
type weedServer struct {
	once     sync.Once
	err      error
	endpoint string // http://127.0.0.1:PORT
	cmd      *exec.Cmd
	dir      string
	client   *minio.Client
}

var s3srv weedServer

const (
	s3Key    = "vitlens-test"
	s3Secret = "vitlens-test-secret"
	s3Bucket = "vitlens-test"
)

// weedBinary is $VITLENS_WEED or the repository's .cache/weed/weed.
func weedBinary() string {
	if p := os.Getenv("VITLENS_WEED"); p != "" {
		return p
	}
	p, _ := filepath.Abs(filepath.Join("..", ".cache", "weed", "weed"))
	return p
}

// s3Env points this process's S3 client (and its children's) at the test
// server and returns a client for the test's own checks.
func s3Env(t *testing.T) *minio.Client {
	t.Helper()
	s3srv.once.Do(s3srv.start)
	if s3srv.err != nil {
		if os.Getenv("VITLENS_REQUIRE_S3") == "" && errors.Is(s3srv.err, os.ErrNotExist) {
			t.Skipf("no S3 server to test against: %v (run `make weed`, or `make test`, which builds it)", s3srv.err)
		}
		t.Fatalf("S3 test server: %v", s3srv.err)
	}
	t.Setenv("AWS_ENDPOINT_URL", s3srv.endpoint)
	t.Setenv("AWS_ENDPOINT_URL_S3", "")
	t.Setenv("AWS_ACCESS_KEY_ID", s3Key)
	t.Setenv("AWS_SECRET_ACCESS_KEY", s3Secret)
	t.Setenv("AWS_REGION", "us-east-1")
	return s3srv.client
}

// freePort asks the kernel for a free loopback port. weed also listens on
// port+10000 (gRPC), so that one must be free too.
func freePort() (int, error) {
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		p := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if p+10000 > 65535 {
			continue
		}
		if g, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p+10000)); err == nil {
			g.Close()
			return p, nil
		}
	}
	return 0, errors.New("no free port pair")
}

func (w *weedServer) start() {
	bin := weedBinary()
	if _, err := os.Stat(bin); err != nil {
		w.err = err
		return
	}
	dir, err := os.MkdirTemp("", "vitlens-weed-*")
	if err != nil {
		w.err = err
		return
	}
	w.dir = dir
	cfg := `{"identities":[{"name":"vitlens","credentials":[{"accessKey":"` + s3Key + `","secretKey":"` + s3Secret +
		`"}],"actions":["Admin","Read","List","Tagging","Write"]}]}`
	if err := os.WriteFile(filepath.Join(dir, "s3.json"), []byte(cfg), 0o644); err != nil {
		w.err = err
		return
	}
	var ports [4]int
	for i := range ports {
		if ports[i], err = freePort(); err != nil {
			w.err = err
			return
		}
	}
	data := filepath.Join(dir, "data")
	os.MkdirAll(data, 0o755)
	w.cmd = exec.Command(bin, "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-dir="+data,
		"-master.port="+strconv.Itoa(ports[0]), "-volume.port="+strconv.Itoa(ports[1]),
		"-filer.port="+strconv.Itoa(ports[2]), "-s3", "-s3.port="+strconv.Itoa(ports[3]),
		"-s3.config="+filepath.Join(dir, "s3.json"), "-s3.port.iceberg=0", "-s3.port.lance=0",
		"-volume.max=20", "-master.volumeSizeLimitMB=64")
	logf, _ := os.Create(filepath.Join(dir, "weed.log"))
	w.cmd.Stdout, w.cmd.Stderr = logf, logf
	if err := w.cmd.Start(); err != nil {
		w.err = err
		return
	}
	w.endpoint = fmt.Sprintf("http://127.0.0.1:%d", ports[3])
	w.client, err = minio.New(fmt.Sprintf("127.0.0.1:%d", ports[3]), &minio.Options{
		Creds: credentials.NewStaticV4(s3Key, s3Secret, ""), BucketLookup: minio.BucketLookupPath, Region: "us-east-1"})
	if err != nil {
		w.err = err
		return
	}
	// Ready when the bucket can be made and an object put (the filer and a
	// volume are up); weed needs some seconds on a busy machine.
	deadline := time.Now().Add(180 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = w.client.MakeBucket(ctx, s3Bucket, minio.MakeBucketOptions{})
		if err != nil && minio.ToErrorResponse(err).Code == "BucketAlreadyOwnedByYou" {
			err = nil
		}
		if err == nil {
			_, err = w.client.PutObject(ctx, s3Bucket, "ready", strings.NewReader("ok"), 2, minio.PutObjectOptions{})
		}
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "weed.log"))
			w.err = fmt.Errorf("weed server did not become ready in 180 s: %v\n%s", err, tail(log, 3000))
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func (w *weedServer) stop() {
	if w.cmd != nil && w.cmd.Process != nil {
		w.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { w.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			w.cmd.Process.Kill()
		}
	}
	if w.dir != "" {
		os.RemoveAll(w.dir)
	}
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

// s3Prefix is a fresh prefix of the test bucket for one test.
func s3Prefix(t *testing.T) string {
	return fmt.Sprintf("s3://%s/%s-%d/", s3Bucket, strings.ReplaceAll(t.Name(), "/", "-"), time.Now().UnixNano())
}

// getObject reads the object at dir (an s3:// URL) / name.
func getObject(t *testing.T, c *minio.Client, dir, name string) []byte {
	t.Helper()
	bucket, prefix, err := results.ParseBucketURL(dir)
	if err != nil {
		t.Fatal(err)
	}
	o, err := c.GetObject(context.Background(), bucket, strings.TrimPrefix(prefix+"/"+name, "/"), minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	b, err := io.ReadAll(o)
	if err != nil {
		t.Fatalf("%s/%s: %v", dir, name, err)
	}
	return b
}

// listObjects lists the keys under dir (an s3:// URL), relative to it.
func listObjects(t *testing.T, c *minio.Client, dir string) []string {
	t.Helper()
	bucket, prefix, err := results.ParseBucketURL(dir)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for o := range c.ListObjects(context.Background(), bucket, minio.ListObjectsOptions{Prefix: prefix + "/", Recursive: true}) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		keys = append(keys, strings.TrimPrefix(o.Key, prefix+"/"))
	}
	return keys
}

// Sharded runs with the index from the scheduler's environment merge to the
// whole run's rows in a bucket too (TestShardAutoMergesToWholeRun is the
// local twin); merge reads the shard prefixes from it,
// and summary reads the merged prefix.
func TestS3ShardsMergeToWholeRun(t *testing.T) {
	c := s3Env(t)
	root := vittest.ImageFolder(t, 2, 20, 18, 7)
	whole := filepath.Join(t.TempDir(), "whole")
	mustRun(t, extractArgs(root, whole, "--format", "csv")...)
	want, err := os.ReadFile(filepath.Join(whole, "ranks.csv"))
	if err != nil {
		t.Fatal(err)
	}
	base := s3Prefix(t)
	outDir := func(sched string, i int) string {
		if i < 0 {
			return base + sched + "/merged/"
		}
		return fmt.Sprintf("%s%s/shard-%d/", base, sched, i)
	}
	shardedRuns(t, root, want, outDir, func(dir, name string) []byte { return getObject(t, c, dir, name) })

	// The whole run into the bucket gives the same bytes, and summary reads it.
	s3whole := base + "whole/"
	mustRun(t, extractArgs(root, s3whole, "--format", "csv")...)
	if got := getObject(t, c, s3whole, "ranks.csv"); !bytes.Equal(got, want) {
		t.Errorf("the whole run's ranks.csv in the bucket (%d bytes) differs from the local one (%d bytes)", len(got), len(want))
	}
	local, s3 := mustRun(t, "summary", "--json", whole), mustRun(t, "summary", "--json", base+"k8s/merged/")
	if local != s3 {
		t.Errorf("summary of the merged bucket run differs from the local whole run's:\n%s\n%s", s3, local)
	}
	// A rerun resumes every chunk; another command line is refused.
	if out := mustRun(t, extractArgs(root, s3whole, "--format", "csv")...); !strings.Contains(out, "3 chunks resumed") {
		t.Errorf("rerun into the bucket: %q", out)
	}
	_, stderr, code := runCLI(t, extractArgs(root, s3whole, "--format", "csv", "--limit", "4")...)
	if want := "--limit 0, not 4"; code != 1 || !strings.Contains(stderr, want) || !strings.Contains(stderr, s3whole) {
		t.Errorf("another --limit into the same prefix: exit %d, %q; want %q", code, stderr, want)
	}
	// A shard into another shard's prefix is refused: shards never overwrite
	// each other.
	t.Setenv("JOB_COMPLETION_INDEX", "1")
	_, stderr, code = runCLI(t, extractArgs(root, outDir("k8s", 0), "--format", "csv", "--shard", "auto", "--shards", "3")...)
	if want := "--shard 0/3, not 1/3"; code != 1 || !strings.Contains(stderr, want) {
		t.Errorf("shard 1 into shard 0's prefix: exit %d, %q; want %q", code, stderr, want)
	}
}

// The manifest is created with If-None-Match: of two runs that find an
// empty prefix, only one claims it. The server must honour the condition.
func TestS3ConditionalPut(t *testing.T) {
	c := s3Env(t)
	dir := s3Prefix(t)
	bucket, prefix, _ := results.ParseBucketURL(dir)
	key := prefix + "/manifest.json"
	put := func(body string) error {
		opts := minio.PutObjectOptions{}
		opts.SetMatchETagExcept("*")
		_, err := c.PutObject(context.Background(), bucket, key, strings.NewReader(body), int64(len(body)), opts)
		return err
	}
	if err := put("first"); err != nil {
		t.Fatal(err)
	}
	if err := put("second"); err == nil || minio.ToErrorResponse(err).Code != "PreconditionFailed" {
		t.Fatalf("second conditional put: %v, want PreconditionFailed", err)
	}
	if got := getObject(t, c, dir, "manifest.json"); string(got) != "first" {
		t.Errorf("manifest after the refused put: %q", got)
	}
}

// killingProxy forwards S3 requests to the server; the first PUT whose path
// contains target is cut in the middle of its body: the proxy forwards part
// of it, kills the child that sent it (SIGKILL) and drops the connection.
type killingProxy struct {
	target string
	child  func() *os.Process
	// exited closes once the test's own Wait has reaped the child: the
	// proxy waits on it rather than on the process, since two Waits race
	// for the exit status and the loser's ProcessState stays nil.
	exited <-chan struct{}
	mu     sync.Mutex
	killed bool
}

func (p *killingProxy) handler(upstream *url.URL) http.Handler {
	rp := httputil.NewSingleHostReverseProxy(upstream)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		hit := !p.killed && r.Method == http.MethodPut && strings.Contains(r.URL.Path, p.target)
		if hit {
			p.killed = true
		}
		p.mu.Unlock()
		if hit {
			r.Body = &killAfter{r: r.Body, n: 256, kill: func() {
				p.child().Kill()
				<-p.exited
			}}
		}
		rp.ServeHTTP(w, r)
	})
}

// killAfter passes n bytes through, then kills and fails the read: the
// upstream sees a body shorter than its Content-Length.
type killAfter struct {
	r    io.ReadCloser
	n    int
	kill func()
	done bool
}

func (k *killAfter) Read(b []byte) (int, error) {
	if k.n <= 0 {
		if !k.done {
			k.done = true
			k.kill()
		}
		return 0, errors.New("client killed mid-upload")
	}
	if len(b) > k.n {
		b = b[:k.n]
	}
	n, err := k.r.Read(b)
	k.n -= n
	return n, err
}

func (k *killAfter) Close() error { return k.r.Close() }

// kill -9 of `vitlens extract` in the middle of a chunk's upload to the
// bucket, then the resume: the prefix ends with exactly the rows of an
// uninterrupted run, and the interrupted chunk's parts never became
// visible as committed.
func TestS3ResumeAfterKillMidUpload(t *testing.T) {
	c := s3Env(t)
	root := vittest.ImageFolder(t, 4, 20, 18, 11) // 12 images, 6 chunks of 2
	whole := filepath.Join(t.TempDir(), "whole")
	mustRun(t, extractArgs(root, whole, "--format", "csv")...)
	want, err := os.ReadFile(filepath.Join(whole, "ranks.csv"))
	if err != nil {
		t.Fatal(err)
	}
	up, _ := url.Parse(s3srv.endpoint)
	var child *exec.Cmd
	exited := make(chan struct{})
	// Chunk 3's images part: its ranks part is already up, uncommitted.
	proxy := &killingProxy{target: "/chunks/images/chunk-000003.csv", child: func() *os.Process { return child.Process }, exited: exited}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: proxy.handler(up)}
	go srv.Serve(l)
	defer srv.Close()

	out := s3Prefix(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	child = exec.Command(exe, extractArgs(root, out, "--format", "csv")...)
	child.Env = append(os.Environ(), asVitlens+"=1", "AWS_ENDPOINT_URL=http://"+l.Addr().String())
	var stderr bytes.Buffer
	child.Stderr = &stderr
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	err = child.Wait()
	close(exited)
	if ws, ok := child.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("the child was not killed mid-upload (%v): %s", err, stderr.String())
	}
	keys := strings.Join(listObjects(t, c, out), " ")
	for _, k := range []string{"chunks/chunk-000002.done", "chunks/ranks/chunk-000003.csv"} {
		if !strings.Contains(keys, k) {
			t.Fatalf("after the kill, %s is missing: %s", k, keys)
		}
	}
	for _, k := range []string{"chunks/chunk-000003.done", "chunks/images/chunk-000003.csv", "ranks.csv"} {
		if strings.Contains(keys, k) {
			t.Fatalf("after the kill mid-upload, %s is visible: %s", k, keys)
		}
	}
	// The resume, straight to the server.
	if stdout := mustRun(t, extractArgs(root, out, "--format", "csv")...); !strings.Contains(stdout, "3 chunks resumed") {
		t.Errorf("resume: %q", stdout)
	}
	if got := getObject(t, c, out, "ranks.csv"); !bytes.Equal(got, want) {
		t.Errorf("after kill and resume, ranks.csv (%d bytes) differs from the uninterrupted run's (%d bytes)", len(got), len(want))
	}
	if err := results.Verify(out); err != nil {
		t.Error(err)
	}
}

// TestPeakRSSBucket (opt-in: VITLENS_RSS=1, about two minutes) runs extract
// of the demo model on 1,000 and 10,000 Fashion-MNIST images into the test
// bucket, in a child process, and prints each run's peak resident memory
// from the child's rusage: the object-storage path must stay as flat with
// the dataset size as the local one (README, Performance: 63.6 and 68.5 MB).
//
//	VITLENS_RSS=1 go test -count=1 -run PeakRSSBucket -v ./server
func TestPeakRSSBucket(t *testing.T) {
	if os.Getenv("VITLENS_RSS") == "" {
		t.Skip("opt-in: VITLENS_RSS=1 (extract of 1,000 and 10,000 Fashion-MNIST images into the S3 test server)")
	}
	s3Env(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	base := s3Prefix(t)
	peak := map[int]float64{}
	for _, n := range []int{1000, 10000} {
		cmd := exec.Command(exe, "extract", "--quiet", "--data", "fmnist", "--limit", strconv.Itoa(n),
			"--out", fmt.Sprintf("%sfmnist-%d/", base, n))
		cmd.Env = append(os.Environ(), asVitlens+"=1")
		start := time.Now()
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%v: %v\n%s", cmd.Args, err, b)
		}
		ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
		peak[n] = float64(ru.Maxrss) * 1024 / 1e6 // Linux reports KiB
		t.Logf("%5d images into the bucket: peak RSS %.1f MB, %.1f s", n, peak[n], time.Since(start).Seconds())
	}
	t.Logf("ratio 10,000/1,000 images: %.2f", peak[10000]/peak[1000])
	if peak[10000] > 1.25*peak[1000] {
		t.Errorf("peak RSS grows with the dataset: %.0f MB for 10,000 images, %.0f MB for 1,000", peak[10000], peak[1000])
	}
}

// putFolder uploads every file under dir to the s3:// URL dst, keeping the
// paths below dir as the keys below its prefix.
func putFolder(t *testing.T, c *minio.Client, dir, dst string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		return putFile(c, dst, filepath.ToSlash(rel), path)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// putFile uploads the local file path as dst (an s3:// URL) / name.
func putFile(c *minio.Client, dst, name, path string) error {
	bucket, prefix, err := results.ParseBucketURL(dst)
	if err != nil {
		return err
	}
	_, err = c.FPutObject(context.Background(), bucket, strings.TrimPrefix(prefix+"/"+name, "/"), path, minio.PutObjectOptions{})
	return err
}

// rowsOf is the ranks.csv of an extract over the image folder root into a
// fresh local folder.
func rowsOf(t *testing.T, root string) []byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), "run")
	args := extractArgs(root, out, "--format", "csv")
	_, stderr, code := runCLI(t, args...)
	if code != 0 {
		t.Fatalf("%v: exit %d: %s", args, code, stderr)
	}
	b, err := os.ReadFile(filepath.Join(out, "ranks.csv"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A dataset read from --root s3://... gives the rows of the same folder read
// from the disk. It is copied once into VITLENS_CACHE: a second run
// downloads nothing, an object replaced in the bucket (even by one of the
// same size) is fetched again and one put again with the same bytes is not,
// and an object removed from the bucket leaves the copy too, so the rows
// always follow the bucket.
func TestS3RootMatchesLocalFolder(t *testing.T) {
	c := s3Env(t)
	cache := t.TempDir()
	t.Setenv("VITLENS_CACHE", cache)
	root := vittest.ImageFolder(t, 2, 20, 18, 7)
	want := rowsOf(t, root)
	src := s3Prefix(t) + "images/"
	putFolder(t, c, root, src)
	var files []string
	filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, mustRel(t, root, path))
		}
		return err
	})
	bucket, prefix, _ := results.ParseBucketURL(src)
	copyDir := filepath.Join(cache, "s3", bucket, filepath.FromSlash(prefix))
	// copies is the cached copy's files; a file downloaded again is
	// another file (written under a temporary name and renamed).
	copies := func() map[string]os.FileInfo {
		m := map[string]os.FileInfo{}
		for _, f := range files {
			if st, err := os.Stat(filepath.Join(copyDir, f)); err == nil {
				m[f] = st
			}
		}
		return m
	}

	if got := rowsOf(t, src); !bytes.Equal(got, want) {
		t.Fatalf("rows over %s differ from the local folder's:\n%s\nwant\n%s", src, got, want)
	}
	first := copies()
	if len(first) != len(files) {
		t.Fatalf("the copy in %s holds %d of the %d files", copyDir, len(first), len(files))
	}

	// A second run reuses the copy.
	if got := rowsOf(t, src); !bytes.Equal(got, want) {
		t.Errorf("second run's rows differ")
	}
	for f, st := range copies() {
		if !os.SameFile(st, first[f]) {
			t.Errorf("second run downloaded %s again", f)
		}
	}

	// Replace one image by another, put a second again with its own bytes,
	// and remove a third; the local twin gets the same edits.
	a, b, gone := files[0], files[1], files[len(files)-1]
	content, err := os.ReadFile(filepath.Join(root, b))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, a), content, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(root, gone)); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{a, b} {
		if err := putFile(c, src, filepath.ToSlash(f), filepath.Join(root, f)); err != nil {
			t.Fatal(err)
		}
	}
	key := func(f string) string { return strings.TrimPrefix(prefix+"/"+filepath.ToSlash(f), "/") }
	if err := c.RemoveObject(context.Background(), bucket, key(gone), minio.RemoveObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	want = rowsOf(t, root)
	if got := rowsOf(t, src); !bytes.Equal(got, want) {
		t.Errorf("rows after the bucket changed differ from the changed local folder's:\n%s\nwant\n%s", got, want)
	}
	now := copies()
	if os.SameFile(now[a], first[a]) {
		t.Errorf("%s, replaced in the bucket, was not downloaded again", a)
	}
	if !os.SameFile(now[b], first[b]) {
		t.Errorf("%s, put again with the same bytes, was downloaded again", b)
	}
	if _, ok := now[gone]; ok {
		t.Errorf("the copy keeps %s, removed from the bucket", gone)
	}

	// An object replaced by one of the same size is noticed by its ETag (S3's
	// Last-Modified has a second's resolution).
	content[len(content)-1] ^= 0xff
	if _, err := c.PutObject(context.Background(), bucket, key(b), bytes.NewReader(content), int64(len(content)), minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	if n, err := results.FetchPrefix(src, copyDir); err != nil || n != 1 {
		t.Errorf("fetch after a same-size replacement: %d files downloaded, %v; want 1", n, err)
	}
	if got, err := os.ReadFile(filepath.Join(copyDir, b)); err != nil || !bytes.Equal(got, content) {
		t.Errorf("the copy of %s is not the replaced object: %v", b, err)
	}
}

func mustRel(t *testing.T, base, path string) string {
	t.Helper()
	rel, err := filepath.Rel(base, path)
	if err != nil {
		t.Fatal(err)
	}
	return rel
}

// A --root in the bucket that cannot be read is refused with the flag and
// the reason: an empty prefix, a missing bucket, no credentials.
func TestS3RootErrors(t *testing.T) {
	s3Env(t)
	t.Setenv("VITLENS_CACHE", t.TempDir())
	out := filepath.Join(t.TempDir(), "run")
	base := s3Prefix(t)
	for _, tc := range []struct{ name, root, unset, want string }{
		{"empty prefix", base + "nothing/", "", "holds no objects (check the bucket and prefix)"},
		{"missing bucket", "s3://vitlens-no-such-bucket/images/", "", "bucket vitlens-no-such-bucket does not exist"},
		{"no credentials", base + "nothing/", "AWS_SECRET_ACCESS_KEY", "no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.unset != "" {
				t.Setenv(tc.unset, "")
			}
			_, stderr, code := runCLI(t, extractArgs(tc.root, out)...)
			if code != 1 || !strings.Contains(stderr, "--root") || !strings.Contains(stderr, tc.want) {
				t.Errorf("--root %s: exit %d, %q; want --root and %q", tc.root, code, stderr, tc.want)
			}
		})
	}
}
