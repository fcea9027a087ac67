package dataset

import (
	"bufio"
	"errors"
	"fmt"
	"image"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// CIFAR-100 binary version: each record is the coarse label byte, the fine
// label byte, then 32×32 red, green and blue planes.
const (
	cifarSide    = 32
	cifarRecord  = 2 + 3*cifarSide*cifarSide
	cifarClasses = 100
)

// cifar100 is the test split, the stimuli of MyCIFAR100 (spec §1.5).
type cifar100 struct {
	path    string
	names   []string
	records []int // test.bin record of each item
	labels  []uint8
}

func openCIFAR100(root string, opt Options) (*cifar100, error) {
	path, err := findCIFARTest(root)
	if err != nil {
		return nil, err
	}
	d := &cifar100{path: path}
	if d.names, err = readCIFARNames(filepath.Join(filepath.Dir(path), "fine_label_names.txt")); err != nil {
		return nil, err
	}
	labels, err := readCIFARLabels(path)
	if err != nil {
		return nil, err
	}
	d.records = byLabel(labels, cifarClasses, perClass(opt, 5))
	d.labels = make([]uint8, len(d.records))
	for i, r := range d.records {
		d.labels[i] = labels[r]
	}
	return d, nil
}

// findCIFARTest accepts the folder holding cifar-100-binary/ (torchvision's
// root), the cifar-100-binary folder itself, or the test.bin file.
func findCIFARTest(root string) (string, error) {
	if st, err := os.Stat(root); err == nil && !st.IsDir() {
		return root, nil
	}
	tried := []string{filepath.Join(root, "cifar-100-binary", "test.bin"), filepath.Join(root, "test.bin")}
	for _, p := range tried {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("cifar100: no test split: neither %s nor %s exists "+
		"(the binary version of CIFAR-100, cifar-100-binary.tar.gz, is expected)", tried[0], tried[1])
}

// readCIFARNames returns "0".."99" when the names file is absent, which is
// also how the original names the concepts.
func readCIFARNames(path string) ([]string, error) {
	data, err := readRegular(path)
	if errors.Is(err, fs.ErrNotExist) {
		names := make([]string, cifarClasses)
		for i := range names {
			names[i] = strconv.Itoa(i)
		}
		return names, nil
	}
	if err != nil {
		return nil, err
	}
	var names []string
	for n, line := range strings.Split(strings.TrimRight(string(data), " \t\r\n"), "\n") {
		name := strings.TrimSpace(line)
		if name == "" {
			return nil, fmt.Errorf("%s:%d: empty class name", path, n+1)
		}
		names = append(names, name)
	}
	if len(names) != cifarClasses {
		return nil, fmt.Errorf("%s: %d class names, want %d", path, len(names), cifarClasses)
	}
	return names, nil
}

// readCIFARLabels reads the fine label of every record in one sequential
// pass (pixels are read again, per item, when needed).
func readCIFARLabels(path string) ([]uint8, error) {
	f, err := openRegular(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	n := st.Size() / cifarRecord
	if rem := st.Size() % cifarRecord; rem != 0 {
		return nil, fmt.Errorf("%s: truncated: record %d has %d of %d bytes", path, n, rem, cifarRecord)
	}
	if n == 0 {
		return nil, fmt.Errorf("%s: no records", path)
	}
	labels := make([]uint8, n)
	r := bufio.NewReaderSize(f, 1<<20)
	rec := make([]byte, cifarRecord)
	for i := range labels {
		if _, err := io.ReadFull(r, rec); err != nil {
			return nil, fmt.Errorf("%s: record %d: %v", path, i, err)
		}
		if rec[0] >= 20 || rec[1] >= cifarClasses {
			return nil, fmt.Errorf("%s: record %d: labels coarse %d / fine %d out of range (not CIFAR-100?)",
				path, i, rec[0], rec[1])
		}
		labels[i] = rec[1]
	}
	return labels, nil
}

func (d *cifar100) Name() string      { return "cifar100" }
func (d *cifar100) Len() int          { return len(d.records) }
func (d *cifar100) Classes() []string { return d.names }

func (d *cifar100) Item(i int) Item {
	l := int(d.labels[i])
	return Item{Index: i, ID: "cifar100-test-" + strconv.Itoa(d.records[i]), Label: l, Concept: strconv.Itoa(l)}
}

func (d *cifar100) Image(i int) (image.Image, error) {
	if err := checkIndex(d.Name(), i, len(d.records)); err != nil {
		return nil, err
	}
	f, err := openRegular(d.path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	rec := make([]byte, cifarRecord)
	if _, err := f.ReadAt(rec, int64(d.records[i])*cifarRecord); err != nil {
		return nil, fmt.Errorf("%s: record %d: %v", d.path, d.records[i], err)
	}
	const plane = cifarSide * cifarSide
	img := image.NewRGBA(image.Rect(0, 0, cifarSide, cifarSide))
	for p := range plane {
		img.Pix[4*p] = rec[2+p]
		img.Pix[4*p+1] = rec[2+plane+p]
		img.Pix[4*p+2] = rec[2+2*plane+p]
		img.Pix[4*p+3] = 255
	}
	return img, nil
}

func (d *cifar100) PatchLabels(i int, grid int) ([]uint8, bool, error) {
	return nil, false, checkIndex(d.Name(), i, len(d.records))
}
