package dataset

import (
	"bufio"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"vitlens/vit/preprocess"
)

// fmnistClasses are Fashion-MNIST's label names in label order.
var fmnistClasses = []string{
	"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
	"Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
}

// fmnist holds the raw pixels of one split: the gzipped IDX file cannot be
// read at random, and decompressing it per image would be quadratic.
type fmnist struct {
	split      string
	rows, cols int
	pixels     []byte  // all images, row-major, one byte per pixel
	records    []int   // file record of each item
	labels     []uint8 // label of each file record
}

func openFMNIST(root string, opt Options) (*fmnist, error) {
	split := opt.FMNISTSplit
	if split == "" {
		split = "t10k"
	}
	if split != "t10k" && split != "train" {
		return nil, fmt.Errorf("fmnist: split %q: want t10k or train", split)
	}
	imgPath, err := findIDX(root, split+"-images-idx3-ubyte")
	if err != nil {
		return nil, err
	}
	lblPath, err := findIDX(root, split+"-labels-idx1-ubyte")
	if err != nil {
		return nil, err
	}
	dims, pixels, err := readIDX(imgPath, 3)
	if err != nil {
		return nil, err
	}
	ldims, labels, err := readIDX(lblPath, 1)
	if err != nil {
		return nil, err
	}
	if ldims[0] != dims[0] {
		return nil, fmt.Errorf("fmnist: %s holds %d labels but %s holds %d images", lblPath, ldims[0], imgPath, dims[0])
	}
	for i, l := range labels {
		if int(l) >= len(fmnistClasses) {
			return nil, fmt.Errorf("%s: label %d of record %d out of range [0, %d)", lblPath, l, i, len(fmnistClasses))
		}
	}
	d := &fmnist{split: split, rows: dims[1], cols: dims[2], pixels: pixels, labels: labels}
	if k := perClass(opt, -1); k > 0 {
		d.records = byLabel(labels, len(fmnistClasses), k)
	} else {
		d.records = make([]int, len(labels))
		for i := range d.records {
			d.records[i] = i
		}
	}
	return d, nil
}

// findIDX prefers the uncompressed file and falls back to the .gz one.
func findIDX(root, base string) (string, error) {
	p := filepath.Join(root, base)
	for _, c := range []string{p, p + ".gz"} {
		if _, err := os.Stat(c); err == nil {
			return c, nil
		}
	}
	return "", fmt.Errorf("fmnist: neither %s nor %s.gz exists", p, p)
}

// maxIDXBytes bounds what a header may promise, so a corrupt header cannot
// make us allocate or read without end (60k train images are 47 MB).
const maxIDXBytes = 1 << 30

// readIDX reads a big-endian unsigned-byte IDX file, gzipped or plain
// (detected from the content, not the name), with the given number of
// dimensions. A short file is an error naming the first incomplete record.
func readIDX(path string, ndims int) (dims []int, data []byte, err error) {
	f, err := openRegular(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	br := bufio.NewReader(f)
	var r io.Reader = br
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %v", path, err)
		}
		defer zr.Close()
		r = zr
	}
	head := make([]byte, 4+4*ndims)
	if _, err := io.ReadFull(r, head); err != nil {
		return nil, nil, fmt.Errorf("%s: truncated IDX header: %v", path, err)
	}
	if head[0] != 0 || head[1] != 0 || head[2] != 0x08 || int(head[3]) != ndims {
		return nil, nil, fmt.Errorf("%s: not an unsigned-byte IDX file with %d dimensions (magic % x)", path, ndims, head[:4])
	}
	n, record := 1, 1
	for i := range ndims {
		v := int(binary.BigEndian.Uint32(head[4+4*i:]))
		dims = append(dims, v)
		if v == 0 || n > maxIDXBytes/v {
			return nil, nil, fmt.Errorf("%s: implausible IDX dimensions %v", path, dims)
		}
		n *= v
		if i > 0 {
			record *= v
		}
	}
	// Each record is one image (or label): the pixel limit of every other
	// image source applies, checked before anything is read.
	if record > preprocess.MaxPixels {
		return nil, nil, fmt.Errorf("%s: images of %v pixels exceed the limit of %d pixels (%d megapixels)",
			path, dims[1:], preprocess.MaxPixels, preprocess.MaxPixels>>20)
	}
	// The buffer is sized to what the file can hold, never just to what its
	// header promises: a raw file holds its size, a gzip stream at most
	// 1032 times its size (deflate's limit). Reading into it directly keeps
	// the peak at the data itself, not the doublings of a growing slice.
	st, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	if r == io.Reader(br) {
		if room := st.Size() - int64(len(head)); int64(n) > room {
			return nil, nil, fmt.Errorf("%s: truncated: header promises %d records of %d bytes, record %d is incomplete",
				path, dims[0], record, room/int64(record))
		}
	} else if int64(n) > 1032*st.Size() {
		return nil, nil, fmt.Errorf("%s: header promises %d records of %d bytes, more than a %d-byte gzip file can hold",
			path, dims[0], record, st.Size())
	}
	data = make([]byte, n)
	k, err := io.ReadFull(r, data)
	if k < n {
		data = data[:k]
		if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, nil, fmt.Errorf("%s: %v", path, err)
		}
		return nil, nil, fmt.Errorf("%s: truncated: header promises %d records of %d bytes, record %d is incomplete",
			path, dims[0], record, len(data)/record)
	}
	// Reading on to the end makes gzip verify its checksum and length.
	var one [1]byte
	if k, err := io.ReadFull(r, one[:]); k > 0 {
		return nil, nil, fmt.Errorf("%s: data continues after the %d records the header promises", path, dims[0])
	} else if err != io.EOF {
		return nil, nil, fmt.Errorf("%s: damaged after the last record: %v", path, err)
	}
	return dims, data, nil
}

func (d *fmnist) Name() string      { return "fmnist-" + d.split }
func (d *fmnist) Len() int          { return len(d.records) }
func (d *fmnist) Classes() []string { return fmnistClasses }

func (d *fmnist) Item(i int) Item {
	r := d.records[i]
	l := int(d.labels[r])
	return Item{Index: i, ID: "fmnist-" + d.split + "-" + strconv.Itoa(r), Label: l, Concept: strconv.Itoa(l)}
}

// Image returns a *image.Gray with its own copy of the pixels.
func (d *fmnist) Image(i int) (image.Image, error) {
	if err := checkIndex(d.Name(), i, len(d.records)); err != nil {
		return nil, err
	}
	size := d.rows * d.cols
	img := image.NewGray(image.Rect(0, 0, d.cols, d.rows))
	copy(img.Pix, d.pixels[d.records[i]*size:])
	return img, nil
}

func (d *fmnist) PatchLabels(i int, grid int) ([]uint8, bool, error) {
	return nil, false, checkIndex(d.Name(), i, len(d.records))
}
