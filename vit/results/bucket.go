package results

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

const bucketScheme = "s3://"

// bucketStore is a results folder under a prefix of an S3 bucket.
//
// Why the folder's guarantees hold there:
//   - Atomic files: every file is spooled to a local temporary file (so
//     memory stays flat and its size and SHA-256 are known) and uploaded with
//     one PutObject. S3 makes an object visible only once its upload has
//     completed, for a single PUT and a multipart upload alike: a writer
//     killed mid-upload leaves no object (an unfinished multipart upload is
//     invisible, and cleanTemps aborts it). No temporary key and server-side
//     copy are needed: they would add a second request, not atomicity.
//   - Commit order: a chunk's marker is put only after all its parts were
//     put; the marker records each part's size, SHA-256 and ETag, so a part
//     that a concurrent writer later replaced is found and redone.
//   - One run per prefix: the manifest is created with If-None-Match: *
//     (a conditional put); the loser of a race re-reads the winner's
//     manifest and is refused unless it is the same run.
//   - No lock: S3 has none, and a lock object would outlive a killed writer.
//     Two processes writing the same shard's prefix at once are therefore
//     not prevented (see lock); the schedulers run one task per shard index.
type bucketStore struct {
	client *minio.Client
	bucket string
	prefix string // "" or "a/b/" (with the slash)
}

// clients are shared per endpoint: a run opens many stores (shards, merge).
var (
	clientsMu sync.Mutex
	clients   = map[string]*minio.Client{}
)

// S3Env lists the environment variables an s3:// folder or root reads, for
// help texts and errors.
const S3Env = "AWS_ENDPOINT_URL (or AWS_ENDPOINT_URL_S3), AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_REGION"

// ParseBucketURL splits s3://bucket/prefix into the bucket and the prefix
// (without slashes at either end).
func ParseBucketURL(u string) (bucket, prefix string, err error) {
	rest, ok := strings.CutPrefix(u, bucketScheme)
	if !ok {
		return "", "", fmt.Errorf("%s is not an s3:// URL", u)
	}
	bucket, prefix, _ = strings.Cut(rest, "/")
	prefix = strings.Trim(prefix, "/")
	if bucket == "" {
		return "", "", fmt.Errorf("%s names no bucket (want s3://bucket/prefix/)", u)
	}
	if strings.Contains(prefix, "//") {
		return "", "", fmt.Errorf("%s: empty folder name in the prefix", u)
	}
	return bucket, prefix, nil
}

func openBucket(u string) (*bucketStore, error) {
	bucket, prefix, err := ParseBucketURL(u)
	if err != nil {
		return nil, err
	}
	c, err := S3Client()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", u, err)
	}
	if prefix != "" {
		prefix += "/"
	}
	return &bucketStore{client: c, bucket: bucket, prefix: prefix}, nil
}

// S3Client is the S3 client the AWS_* environment describes: the endpoint
// from AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL (AWS's own when neither is
// set; http:// endpoints are spoken to without TLS), the credentials from
// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN, the region
// from AWS_REGION or AWS_DEFAULT_REGION. Other endpoints than AWS's are
// addressed path-style (endpoint/bucket/key), which every S3-compatible
// server accepts.
func S3Client() (*minio.Client, error) {
	endpoint := os.Getenv("AWS_ENDPOINT_URL_S3")
	if endpoint == "" {
		endpoint = os.Getenv("AWS_ENDPOINT_URL")
	}
	region := os.Getenv("AWS_REGION")
	if region == "" {
		region = os.Getenv("AWS_DEFAULT_REGION")
	}
	if os.Getenv("AWS_ACCESS_KEY_ID") == "" || os.Getenv("AWS_SECRET_ACCESS_KEY") == "" {
		return nil, errors.New("no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and AWS_ENDPOINT_URL for a server other than AWS)")
	}
	// Keyed by every variable the client is made from, so that changed
	// credentials are not answered by a client made before the change.
	key := strings.Join([]string{endpoint, region, os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY"), os.Getenv("AWS_SESSION_TOKEN")}, "\x00")
	clientsMu.Lock()
	defer clientsMu.Unlock()
	if c, ok := clients[key]; ok {
		return c, nil
	}
	host, secure, lookup := "s3.amazonaws.com", true, minio.BucketLookupAuto
	if endpoint != "" {
		u, err := url.Parse(endpoint)
		if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			return nil, fmt.Errorf("AWS_ENDPOINT_URL %q is not an http:// or https:// URL", endpoint)
		}
		host, secure, lookup = u.Host, u.Scheme == "https", minio.BucketLookupPath
	}
	c, err := minio.New(host, &minio.Options{Creds: credentials.NewEnvAWS(), Secure: secure,
		Region: region, BucketLookup: lookup})
	if err != nil {
		return nil, fmt.Errorf("S3 endpoint %s: %w", host, err)
	}
	clients[key] = c
	return c, nil
}

func (b *bucketStore) key(name string) string { return b.prefix + name }

func (b *bucketStore) where(name string) string {
	return bucketScheme + b.bucket + "/" + b.key(name)
}

// wrap turns S3's "no such key" into fs.ErrNotExist and names the object.
func (b *bucketStore) wrap(name string, err error) error {
	if err == nil {
		return nil
	}
	switch minio.ToErrorResponse(err).Code {
	case "NoSuchKey", "NotFound":
		return &fs.PathError{Op: "open", Path: b.where(name), Err: fs.ErrNotExist}
	case "NoSuchBucket":
		return fmt.Errorf("%s: bucket %s does not exist: create it first", b.where(name), b.bucket)
	case "PreconditionFailed":
		return &fs.PathError{Op: "create", Path: b.where(name), Err: fs.ErrExist}
	}
	return fmt.Errorf("%s: %w", b.where(name), err)
}

func (b *bucketStore) get(name string) ([]byte, error) {
	o, err := b.client.GetObject(context.Background(), b.bucket, b.key(name), minio.GetObjectOptions{})
	if err != nil {
		return nil, b.wrap(name, err)
	}
	defer o.Close()
	data, err := io.ReadAll(o)
	return data, b.wrap(name, err)
}

// spool is a local temporary copy of an object, removed on Close.
type spool struct {
	*os.File
	size int64
}

func (s spool) Size() int64 { return s.size }

func (s spool) Close() error {
	err := s.File.Close()
	os.Remove(s.File.Name())
	return err
}

// open downloads the object to a temporary file: a Parquet reader's many
// small reads at offsets would each be a request otherwise.
func (b *bucketStore) open(name string) (readable, error) {
	o, err := b.client.GetObject(context.Background(), b.bucket, b.key(name), minio.GetObjectOptions{})
	if err != nil {
		return nil, b.wrap(name, err)
	}
	defer o.Close()
	f, err := os.CreateTemp("", "vitlens-s3-*")
	if err != nil {
		return nil, err
	}
	n, err := io.Copy(f, o)
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, b.wrap(name, err)
	}
	return spool{f, n}, nil
}

func (b *bucketStore) put(name string, fill func(io.Writer) error) (partRecord, error) {
	f, err := os.CreateTemp("", "vitlens-s3-*")
	if err != nil {
		return partRecord{}, err
	}
	defer func() { f.Close(); os.Remove(f.Name()) }()
	hw := newHashingWriter(f)
	if err := fill(hw); err != nil {
		return partRecord{}, fmt.Errorf("writing %s: %w", b.where(name), err)
	}
	rec := hw.record()
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return rec, err
	}
	info, err := b.client.PutObject(context.Background(), b.bucket, b.key(name), f, rec.Bytes,
		minio.PutObjectOptions{ContentType: contentType(name)})
	if err != nil {
		return rec, b.wrap(name, err)
	}
	rec.ETag = info.ETag
	return rec, nil
}

// putNew is a conditional put (If-None-Match: *). A server that ignores the
// condition would replace the object; lock checks for that once per bucket.
func (b *bucketStore) putNew(name string, data []byte) error {
	opts := minio.PutObjectOptions{ContentType: contentType(name)}
	opts.SetMatchETagExcept("*")
	_, err := b.client.PutObject(context.Background(), b.bucket, b.key(name), bytes.NewReader(data), int64(len(data)), opts)
	return b.wrap(name, err)
}

func (b *bucketStore) stat(name string) (partRecord, error) {
	info, err := b.client.StatObject(context.Background(), b.bucket, b.key(name), minio.StatObjectOptions{})
	if err != nil {
		return partRecord{}, b.wrap(name, err)
	}
	return partRecord{Bytes: info.Size, ETag: info.ETag}, nil
}

func (b *bucketStore) remove(name string) error {
	err := b.client.RemoveObject(context.Background(), b.bucket, b.key(name), minio.RemoveObjectOptions{})
	if err = b.wrap(name, err); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

func (b *bucketStore) list(dir string) (files, dirs []string, err error) {
	prefix := b.key(dir)
	if dir != "" {
		prefix += "/"
	}
	for o := range b.client.ListObjects(context.Background(), b.bucket, minio.ListObjectsOptions{Prefix: prefix}) {
		if o.Err != nil {
			return nil, nil, b.wrap(dir, o.Err)
		}
		name := strings.TrimPrefix(o.Key, prefix)
		if d, ok := strings.CutSuffix(name, "/"); ok {
			dirs = append(dirs, d)
		} else if name != "" {
			files = append(files, name)
		}
	}
	return sortedNames(files), sortedNames(dirs), nil
}

// copyFrom copies on the server when both folders are on this endpoint;
// a copy, like a put, appears whole or not at all.
func (b *bucketStore) copyFrom(src store, name string) (partRecord, error) {
	s, ok := src.(*bucketStore)
	if !ok || s.client != b.client {
		return streamCopy(b, src, name)
	}
	info, err := b.client.CopyObject(context.Background(),
		minio.CopyDestOptions{Bucket: b.bucket, Object: b.key(name)},
		minio.CopySrcOptions{Bucket: s.bucket, Object: s.key(name)})
	if err != nil {
		return partRecord{}, b.wrap(name, err)
	}
	return partRecord{Bytes: info.Size, ETag: info.ETag}, nil
}

// lock cannot exclude a second writer: S3 has no locks, and a lock object
// left by a killed writer would block its resume until someone removed it
// by hand. What it does check is that the server honours If-None-Match, on
// which the manifest's one-run-per-prefix guarantee rests.
func (b *bucketStore) lock() (func() error, error) {
	if err := b.checkConditionalPut(); err != nil {
		return nil, err
	}
	return func() error { return nil }, nil
}

var conditionalChecked sync.Map // bucket URL -> error

// checkConditionalPut puts a probe object twice with If-None-Match: *; the
// second put must be refused.
func (b *bucketStore) checkConditionalPut() error {
	id := b.client.EndpointURL().String() + "/" + b.bucket
	if err, ok := conditionalChecked.Load(id); ok {
		return errOrNil(err)
	}
	probe := &bucketStore{client: b.client, bucket: b.bucket}
	name := ".vitlens-conditional-put-probe"
	err := probe.putNew(name, []byte("vitlens checks that this server honours If-None-Match\n"))
	if errors.Is(err, fs.ErrExist) {
		err = nil // an earlier check left it: refused, as it must be
	} else if err == nil {
		if err = probe.putNew(name, []byte("again\n")); errors.Is(err, fs.ErrExist) {
			err = nil
		} else if err == nil {
			err = fmt.Errorf("S3 server %s does not honour If-None-Match on PUT, so two runs could claim one prefix: use a server that supports conditional writes", b.client.EndpointURL().Host)
		}
	}
	conditionalChecked.Store(id, err)
	return err
}

func errOrNil(v any) error {
	if err, ok := v.(error); ok {
		return err
	}
	return nil
}

// cleanTemps aborts unfinished multipart uploads under dir: invisible, but
// billed until aborted.
func (b *bucketStore) cleanTemps(dir string) error {
	prefix := b.key(dir)
	if dir != "" {
		prefix += "/"
	}
	for u := range b.client.ListIncompleteUploads(context.Background(), b.bucket, prefix, false) {
		if u.Err != nil {
			if minio.ToErrorResponse(u.Err).StatusCode == http.StatusNotImplemented {
				return nil
			}
			return b.wrap(dir, u.Err)
		}
		if err := b.client.RemoveIncompleteUpload(context.Background(), b.bucket, u.Key); err != nil {
			return b.wrap(u.Key, err)
		}
	}
	return nil
}

func contentType(name string) string {
	switch {
	case strings.HasSuffix(name, ".json"), strings.HasSuffix(name, ".done"):
		return "application/json"
	case strings.HasSuffix(name, ".csv"):
		return "text/csv"
	case strings.HasSuffix(name, ".png"):
		return "image/png"
	}
	return "application/octet-stream"
}

// FetchPrefix copies every object under the s3:// URL src into the local
// folder dst, keeping the key's path below the prefix, and returns how many
// objects it downloaded. A dataset is read from a local copy: its readers
// seek and stat files, and a second run (or a resumed one) on the same
// machine finds the copy in place: an object whose local file has its size
// and whose ETag is the one recorded at its download (in dst + ".etags", a
// JSON object of key to ETag; S3 changes the ETag with the content, while
// Last-Modified has only a second's resolution) is not downloaded again, so
// an object replaced in the bucket, even by one of the same size, is
// fetched anew; local files whose objects are gone are
// removed, so the copy never holds images the bucket no longer has. Each
// file is written through a temporary name, so a killed download never
// leaves a short file behind.
func FetchPrefix(src, dst string) (int, error) {
	b, err := openBucket(src)
	if err != nil {
		return 0, err
	}
	ctx := context.Background()
	n, seen := 0, map[string]bool{}
	etagsFile := filepath.Clean(dst) + ".etags"
	etags := map[string]string{}
	if b, err := os.ReadFile(etagsFile); err == nil {
		json.Unmarshal(b, &etags) // unreadable: every object is fetched again
	}
	fetched := map[string]string{}
	for o := range b.client.ListObjects(ctx, b.bucket, minio.ListObjectsOptions{Prefix: b.prefix, Recursive: true}) {
		if o.Err != nil {
			return n, b.wrap("", o.Err)
		}
		rel := strings.TrimPrefix(o.Key, b.prefix)
		if rel == "" || strings.HasSuffix(rel, "/") {
			continue // a folder placeholder
		}
		local := filepath.Join(dst, filepath.FromSlash(rel))
		if !strings.HasPrefix(local, filepath.Clean(dst)+string(filepath.Separator)) {
			return n, fmt.Errorf("%s: key %s leaves the folder", src, o.Key)
		}
		seen[local] = true
		fetched[rel] = o.ETag
		if st, err := os.Stat(local); err == nil && st.Size() == o.Size && etags[rel] == o.ETag {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(local), 0o755); err != nil {
			return n, err
		}
		obj, err := b.client.GetObject(ctx, b.bucket, o.Key, minio.GetObjectOptions{})
		if err != nil {
			return n, b.wrap(rel, err)
		}
		err = writeAtomic(local, func(w io.Writer) error {
			_, err := io.Copy(w, obj)
			return err
		})
		obj.Close()
		if err != nil {
			return n, b.wrap(rel, err)
		}
		n++
	}
	if len(seen) == 0 {
		return 0, fmt.Errorf("%s holds no objects (check the bucket and prefix)", src)
	}
	if err := removeUnlisted(dst, seen); err != nil {
		return n, err
	}
	return n, writeAtomic(etagsFile, func(w io.Writer) error { return json.NewEncoder(w).Encode(fetched) })
}

// removeUnlisted removes the files under dst that are not in keep, leaving
// the temporary files of a download in progress (another shard on this
// machine may be fetching the same prefix).
func removeUnlisted(dst string, keep map[string]bool) error {
	return filepath.WalkDir(dst, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || keep[path] || strings.Contains(d.Name(), tmpMarker) {
			return err
		}
		return os.Remove(path)
	})
}
