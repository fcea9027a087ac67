package dataset

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"hash"
	"os"
	"path/filepath"
)

// Fingerprint identifies the stimulus list of ds, cheaply: a SHA-256 over
// its name, its length and, in order, every item's index, ID, label and the
// size of the file it is read from (Fashion-MNIST, held in memory, hashes
// its pixels instead). Files added, removed, renamed, relabelled or
// rewritten at another size change it; the pixels of image files are not
// read, so it costs one stat per file. Results folders record it, so a run
// resumed or merged over other images is refused.
func Fingerprint(ds Dataset) string {
	h := sha256.New()
	writeString(h, ds.Name())
	writeInt(h, int64(ds.Len()))
	src, _ := ds.(itemSource)
	sizes := map[string]int64{} // one stat per file, even when items share one
	for i := range ds.Len() {
		it := ds.Item(i)
		writeInt(h, int64(it.Index))
		writeString(h, it.ID)
		writeInt(h, int64(it.Label))
		if src == nil {
			continue
		}
		path, content := src.source(i)
		if content != nil {
			h.Write(content)
			continue
		}
		size, ok := sizes[path]
		if !ok {
			size = -1 // a missing file: the run will skip the item
			if st, err := os.Stat(path); err == nil {
				size = st.Size()
			}
			sizes[path] = size
		}
		writeInt(h, size)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// itemSource says where item i's bytes come from: a file, or (for data held
// in memory) the bytes themselves.
type itemSource interface {
	source(i int) (path string, content []byte)
}

func (d *folder) source(i int) (string, []byte) {
	it := d.items[i]
	return filepath.Join(d.root, d.dirs[it.label], it.file), nil
}

func (d *ImageNetS) source(i int) (string, []byte) { return d.imagePath(i), nil }

func (d *cifar100) source(int) (string, []byte) { return d.path, nil }

func (d *fmnist) source(i int) (string, []byte) {
	size := d.rows * d.cols
	r := d.records[i]
	return "", d.pixels[r*size : (r+1)*size]
}

func (v *view) source(i int) (string, []byte) {
	if src, ok := v.parent.(itemSource); ok {
		return src.source(v.idx[i])
	}
	return "", nil
}

func writeString(h hash.Hash, s string) {
	writeInt(h, int64(len(s)))
	h.Write([]byte(s))
}

func writeInt(h hash.Hash, v int64) {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], uint64(v))
	h.Write(b[:])
}
