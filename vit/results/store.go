package results

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// store is where a results folder lives: a local directory (dirStore) or a
// prefix of an S3 bucket (bucketStore). Names are slash-separated and
// relative to the folder ("chunks/images/chunk-000007.parquet"). Both keep
// the folder's guarantees: a file written by put is seen whole or not at all,
// and putNew never replaces a file another writer put first.
type store interface {
	// where names the file for messages: a path or an s3:// URL.
	where(name string) string
	// get reads a small file whole; a missing one is fs.ErrNotExist.
	get(name string) ([]byte, error)
	// open opens a file for reading at any offset (Parquet reads its footer
	// first). On a bucket it is a local copy, removed on Close.
	open(name string) (readable, error)
	// put writes name atomically from fill and returns what was written.
	put(name string, fill func(io.Writer) error) (partRecord, error)
	// putNew is put that fails with fs.ErrExist when name already exists.
	putNew(name string, b []byte) error
	// stat returns what a later check compares: the size (and, on a bucket,
	// the ETag); a missing file is fs.ErrNotExist.
	stat(name string) (partRecord, error)
	// remove deletes name; a missing one is not an error.
	remove(name string) error
	// list returns the files and the sub-folders directly in dir ("" is the
	// folder itself), sorted; a missing dir is empty.
	list(dir string) (files, dirs []string, err error)
	// copyFrom puts src's file name (of another store) at name here.
	copyFrom(src store, name string) (partRecord, error)
	// lock takes the folder for one writer; see lockFolder and bucketStore.lock.
	lock() (unlock func() error, err error)
	// cleanTemps removes the leftovers of interrupted writes in dir.
	cleanTemps(dir string) error
}

// readable is an open file: read in a stream or at offsets.
type readable interface {
	io.Reader
	io.ReaderAt
	io.Closer
	Size() int64
}

// openStore returns the store of a results folder: a bucket for s3://
// URLs, the local directory otherwise.
func openStore(dir string) (store, error) {
	if IsBucket(dir) {
		return openBucket(dir)
	}
	return dirStore(dir), nil
}

// IsBucket says whether a results folder or dataset root names an S3 prefix.
func IsBucket(dir string) bool { return strings.HasPrefix(dir, bucketScheme) }

// joinName is path.Join for store names.
func joinName(elem ...string) string { return path.Join(elem...) }

// hashingWriter measures what passes through it: bytes and SHA-256.
type hashingWriter struct {
	w io.Writer
	h hashState
	n int64
}

type hashState interface {
	io.Writer
	Sum([]byte) []byte
}

func newHashingWriter(w io.Writer) *hashingWriter {
	return &hashingWriter{w: w, h: sha256.New()}
}

func (hw *hashingWriter) Write(p []byte) (int, error) {
	n, err := hw.w.Write(p)
	hw.h.Write(p[:n])
	hw.n += int64(n)
	return n, err
}

func (hw *hashingWriter) record() partRecord {
	return partRecord{Bytes: hw.n, SHA256: hex.EncodeToString(hw.h.Sum(nil))}
}

// dirStore is a results folder on the local file system.
type dirStore string

func (d dirStore) file(name string) string { return filepath.Join(string(d), filepath.FromSlash(name)) }

func (d dirStore) where(name string) string { return d.file(name) }

func (d dirStore) get(name string) ([]byte, error) { return os.ReadFile(d.file(name)) }

type localFile struct {
	*os.File
	size int64
}

func (f localFile) Size() int64 { return f.size }

func (d dirStore) open(name string) (readable, error) {
	f, err := os.Open(d.file(name))
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	return localFile{f, st.Size()}, nil
}

func (d dirStore) put(name string, fill func(io.Writer) error) (rec partRecord, err error) {
	p := d.file(name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return rec, err
	}
	err = writeAtomic(p, func(w io.Writer) error {
		hw := newHashingWriter(w)
		if err := fill(hw); err != nil {
			return err
		}
		rec = hw.record()
		return nil
	})
	return rec, err
}

// putNew writes a temporary file and hard-links it into place: link, unlike
// rename, fails when the target exists.
func (d dirStore) putNew(name string, b []byte) error {
	p := d.file(name)
	dir, base := filepath.Split(p)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+base+tmpMarker+"*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Link(tmp, p); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fs.ErrExist
		}
		return err
	}
	syncDir(dir)
	return nil
}

func (d dirStore) stat(name string) (partRecord, error) {
	st, err := os.Stat(d.file(name))
	if err != nil {
		return partRecord{}, err
	}
	return partRecord{Bytes: st.Size()}, nil
}

func (d dirStore) remove(name string) error {
	if err := os.Remove(d.file(name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

func (d dirStore) list(dir string) (files, dirs []string, err error) {
	entries, err := os.ReadDir(d.file(dir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	for _, e := range entries {
		if e.IsDir() {
			dirs = append(dirs, e.Name())
		} else {
			files = append(files, e.Name())
		}
	}
	return files, dirs, nil
}

// copyFrom links a local file (parts are never modified in place, only
// replaced by rename, so a hard link is a safe copy) or streams it.
func (d dirStore) copyFrom(src store, name string) (partRecord, error) {
	if s, ok := src.(dirStore); ok {
		dst := d.file(name)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return partRecord{}, err
		}
		if err := linkOrCopyAtomic(s.file(name), dst); err != nil {
			return partRecord{}, err
		}
		return d.stat(name)
	}
	return streamCopy(d, src, name)
}

// streamCopy copies name from src to dst through put.
func streamCopy(dst, src store, name string) (partRecord, error) {
	in, err := src.open(name)
	if err != nil {
		return partRecord{}, err
	}
	defer in.Close()
	return dst.put(name, func(w io.Writer) error {
		_, err := io.Copy(w, in)
		return err
	})
}

func (d dirStore) lock() (func() error, error) {
	if err := os.MkdirAll(string(d), 0o755); err != nil {
		return nil, err
	}
	l, err := lockFolder(string(d))
	if err != nil {
		return nil, err
	}
	return l.release, nil
}

func (d dirStore) cleanTemps(dir string) error { return removeTemps(d.file(dir)) }

// fileRecord measures a file of st: size, SHA-256 (read in a stream) and,
// on a bucket, the ETag.
func fileRecord(st store, name string) (partRecord, error) {
	rec, err := st.stat(name)
	if err != nil {
		return rec, err
	}
	f, err := st.open(name)
	if err != nil {
		return rec, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return rec, err
	}
	rec.SHA256 = hex.EncodeToString(h.Sum(nil))
	return rec, nil
}

// sortedNames sorts in place and returns s, for listings.
func sortedNames(s []string) []string {
	slices.Sort(s)
	return s
}
