package dataset

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"image"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"vitlens/vit/preprocess"
)

// catsExclude are the wnids of the 5 ImageNet class pairs that ImageNet-S
// merged (CATS_EXCLUDE of src/datasets/imagenet.py); their single ImageNet-S
// category matches neither ImageNet class, so the original leaves them out.
var catsExclude = map[string]string{
	"n04356056": "n04355933", "n04355933": "n04356056",
	"n04493381": "n02808440", "n02808440": "n04493381",
	"n03642806": "n03832673", "n03832673": "n03642806",
	"n04008634": "n03773504", "n03773504": "n04008634",
	"n03887697": "n15075141", "n15075141": "n03887697",
}

// File locations under the ImageNet-S root (a clone of LUSSeg/ImageNet-S
// with the dataset built inside it), spec §1.1.
const (
	imageNetSDir   = "ImageNetS919"
	locFile        = "LOC_synset_mapping.txt"
	categoriesFile = "data/categories/ImageNetS_categories_im919.txt"
)

// ImageNetS is the ImageNet-S919 stimulus set (ImagenetDatasetS of the
// original code). Classes are the 1000 ImageNet classes of
// LOC_synset_mapping.txt, in its line order (the timm head order).
type ImageNetS struct {
	root, partition string
	// preset and imageSize say how the model's input is cut from each image
	// (Options.Preset); nil samples the full mask, as the original does.
	preset       *preprocess.Preset
	imageSize    int
	wnids, names []string // LOC order
	items        []inetItem
	skipped      []string

	catOnce sync.Once
	catIDs  map[string]int // wnid -> mask category id (1-based line number)
	catErr  error
}

type inetItem struct {
	label    int
	file     string // image file name inside {partition}/{wnid}/
	imgIndex int    // position within its category (the CSV's img_index)
}

func openImageNetS(root string, opt Options) (*ImageNetS, error) {
	d := &ImageNetS{root: root, partition: opt.Partition, preset: opt.Preset, imageSize: opt.ImageSize}
	if d.partition == "" {
		d.partition = "validation"
	}
	if strings.ContainsAny(d.partition, `/\`) || d.partition == ".." {
		return nil, fmt.Errorf("imagenet-s: partition %q is not a folder name", d.partition)
	}
	if st, err := os.Stat(filepath.Join(root, imageNetSDir)); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("imagenet-s: %s has no %s folder (the root is the ImageNet-S repository clone "+
			"holding %s/ and data/categories/)", root, imageNetSDir, imageNetSDir)
	}
	loc := filepath.Join(root, imageNetSDir, locFile)
	var err error
	if d.wnids, d.names, err = readLOC(loc); err != nil {
		return nil, err
	}
	classOf := make(map[string]int, len(d.wnids))
	for i, w := range d.wnids {
		classOf[w] = i
	}
	csvPath := filepath.Join(root, imageNetSDir, d.partition+"_stim_info.csv")
	if _, serr := os.Stat(csvPath); serr == nil {
		err = d.readStimInfo(csvPath, classOf)
	} else {
		err = d.buildStimInfo(classOf, perClass(opt, 5))
	}
	if err != nil {
		return nil, err
	}
	if len(d.items) == 0 {
		return nil, fmt.Errorf("imagenet-s: no stimuli in %s", filepath.Join(root, imageNetSDir, d.partition))
	}
	return d, nil
}

// readLOC reads the ImageNet-1k class list: line k is "wnid name, name, ...".
func readLOC(path string) (wnids, names []string, err error) {
	data, err := readRegular(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("%s is missing: ImageNet-S does not ship it; copy the ImageNet-1k "+
			"LOC_synset_mapping.txt (1000 lines 'wnid names', the class order of the model head) there", path)
	}
	if err != nil {
		return nil, nil, err
	}
	seen := map[string]int{}
	for n, line := range strings.Split(strings.TrimRight(string(data), " \t\r\n"), "\n") {
		line = strings.TrimSpace(line)
		wnid, name, _ := strings.Cut(line, " ")
		if wnid == "" {
			return nil, nil, fmt.Errorf("%s:%d: empty line (line k must hold class k)", path, n+1)
		}
		if prev, dup := seen[wnid]; dup {
			return nil, nil, fmt.Errorf("%s:%d: wnid %s already on line %d", path, n+1, wnid, prev)
		}
		seen[wnid] = n + 1
		wnids = append(wnids, wnid)
		names = append(names, strings.TrimSpace(name))
	}
	if len(wnids) == 0 {
		return nil, nil, fmt.Errorf("%s: no classes", path)
	}
	return wnids, names, nil
}

// readStimInfo reads the published stimuli file. Columns are found by
// header name, so both pandas layouts (with or without the unnamed index
// column) work.
func (d *ImageNetS) readStimInfo(path string, classOf map[string]int) error {
	f, err := openRegular(path)
	if err != nil {
		return err
	}
	defer f.Close()
	r := csv.NewReader(bufio.NewReader(f))
	header, err := r.Read()
	if err != nil {
		return fmt.Errorf("%s: reading header: %v", path, err)
	}
	col := map[string]int{}
	for i, h := range header {
		col[strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))] = i
	}
	for _, need := range []string{"imagenet_id", "index", "img_name"} {
		if _, ok := col[need]; !ok {
			return fmt.Errorf("%s: no %q column (header %q)", path, need, header)
		}
	}
	perWnid := map[string]int{}
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("%s: %v", path, err)
		}
		line, _ := r.FieldPos(0)
		wnid := strings.TrimSpace(rec[col["imagenet_id"]])
		label, ok := classOf[wnid]
		if !ok {
			return fmt.Errorf("%s:%d: class %q is not in %s", path, line, wnid, locFile)
		}
		idx, err := strconv.Atoi(strings.TrimSpace(rec[col["index"]]))
		if err != nil || idx != label {
			return fmt.Errorf("%s:%d: index %q of %s disagrees with %s (line %d, index %d)",
				path, line, rec[col["index"]], wnid, locFile, label+1, label)
		}
		name := strings.TrimSpace(rec[col["img_name"]])
		if name == "" || strings.ContainsAny(name, `/\`) || name == "." || name == ".." {
			return fmt.Errorf("%s:%d: img_name %q is not a file name", path, line, name)
		}
		imgIndex := perWnid[wnid]
		if c, ok := col["img_index"]; ok {
			if imgIndex, err = strconv.Atoi(strings.TrimSpace(rec[c])); err != nil {
				return fmt.Errorf("%s:%d: img_index %q is not an integer", path, line, rec[c])
			}
		}
		perWnid[wnid]++
		d.items = append(d.items, inetItem{label: label, file: name, imgIndex: imgIndex})
	}
	return nil
}

// buildStimInfo rebuilds the stimuli as the original does when the CSV is
// missing, but with sorted instead of directory-iteration order (A19).
func (d *ImageNetS) buildStimInfo(classOf map[string]int, k int) error {
	dir := filepath.Join(d.root, imageNetSDir, d.partition)
	cats, err := os.ReadDir(dir) // sorted by file name
	if err != nil {
		return fmt.Errorf("imagenet-s: no stimuli info CSV and cannot list images: %v", err)
	}
	for _, c := range cats {
		path := filepath.Join(dir, c.Name())
		if !isDir(path, c) {
			continue
		}
		wnid := c.Name()
		if other, ok := catsExclude[wnid]; ok {
			d.skipped = append(d.skipped, fmt.Sprintf("%s: excluded (ImageNet-S merged it with %s)", path, other))
			continue
		}
		label, ok := classOf[wnid]
		if !ok {
			return fmt.Errorf("%s: folder %s is not a class in %s", path, wnid, locFile)
		}
		files, err := os.ReadDir(path)
		if err != nil {
			return err
		}
		var jpegs []string
		for _, f := range files {
			ext := strings.ToLower(filepath.Ext(f.Name()))
			p := filepath.Join(path, f.Name())
			switch {
			case ext != ".jpeg" && ext != ".jpg" || isDir(p, f):
			case !isRegular(p, f):
				d.skipped = append(d.skipped, p+": "+errNotRegular)
			default:
				jpegs = append(jpegs, f.Name())
			}
		}
		if len(jpegs) == 0 {
			d.skipped = append(d.skipped, path+": no JPEGs")
			continue
		}
		if k > 0 && len(jpegs) < k {
			d.skipped = append(d.skipped, fmt.Sprintf("%s: %d JPEGs, fewer than %d", path, len(jpegs), k))
			continue
		}
		if k > 0 {
			jpegs = jpegs[:k]
		}
		for i, name := range jpegs {
			d.items = append(d.items, inetItem{label: label, file: name, imgIndex: i})
		}
	}
	return nil
}

// isDir follows symbolic links, which are common in dataset trees.
func isDir(path string, e fs.DirEntry) bool {
	if e.Type()&fs.ModeSymlink != 0 {
		st, err := os.Stat(path)
		return err == nil && st.IsDir()
	}
	return e.IsDir()
}

func (d *ImageNetS) Name() string      { return "imagenet-s/" + d.partition }
func (d *ImageNetS) Len() int          { return len(d.items) }
func (d *ImageNetS) Classes() []string { return d.names }
func (d *ImageNetS) Skipped() []string { return d.skipped }

// Wnids returns the WordNet ids of the classes, in class-index order.
func (d *ImageNetS) Wnids() []string { return d.wnids }

func (d *ImageNetS) Item(i int) Item {
	it := d.items[i]
	w := d.wnids[it.label]
	return Item{Index: i, ID: w + "/" + it.file, Label: it.label, Concept: w}
}

func (d *ImageNetS) imagePath(i int) string {
	it := d.items[i]
	return filepath.Join(d.root, imageNetSDir, d.partition, d.wnids[it.label], it.file)
}

func (d *ImageNetS) Image(i int) (image.Image, error) {
	if err := checkIndex(d.Name(), i, len(d.items)); err != nil {
		return nil, err
	}
	return decodePath(d.imagePath(i))
}

// decodePath decodes an image file, naming its full path in errors.
func decodePath(path string) (image.Image, error) {
	f, err := openRegular(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return preprocess.Decode(f, path)
}

// PatchLabels reads {partition}-segmentation/{wnid}/{stem}.png.
func (d *ImageNetS) PatchLabels(i int, grid int) ([]uint8, bool, error) {
	if err := checkIndex(d.Name(), i, len(d.items)); err != nil {
		return nil, false, err
	}
	if grid < 1 {
		return nil, false, fmt.Errorf("%s: patch grid %d must be positive", d.Name(), grid)
	}
	d.catOnce.Do(d.loadCategories)
	if d.catErr != nil {
		return nil, false, d.catErr
	}
	it := d.items[i]
	wnid := d.wnids[it.label]
	id, ok := d.catIDs[wnid]
	if !ok {
		return nil, false, fmt.Errorf("%s: %s has no segmentation category", filepath.Join(d.root, categoriesFile), wnid)
	}
	stem := strings.TrimSuffix(it.file, filepath.Ext(it.file))
	maskPath := filepath.Join(d.root, imageNetSDir, d.partition+"-segmentation", wnid, stem+".png")
	imgPath := d.imagePath(i)
	w, h, err := imageSize(imgPath)
	if err != nil {
		return nil, false, err
	}
	f, err := openRegular(maskPath)
	if err != nil {
		return nil, false, fmt.Errorf("mask of %s: %w", d.Item(i).ID, err)
	}
	defer f.Close()
	// The full-resolution mask counts against the in-flight pixel budget
	// until it has been sampled down to the patch grid.
	var labels []uint8
	var sizeErr error
	err = preprocess.DecodeWith(f, maskPath, func(mask image.Image) error {
		if mb := mask.Bounds(); mb.Dx() != w || mb.Dy() != h {
			sizeErr = fmt.Errorf("%s: mask is %dx%d but image %s is %dx%d: %w",
				maskPath, mb.Dx(), mb.Dy(), imgPath, w, h, ErrMaskSize)
			return sizeErr
		}
		if d.preset != nil && d.imageSize > 0 {
			if win := d.preset.Window(w, h, d.imageSize); win.Crops() {
				labels = MaskPatchLabelsIn(mask, id, grid, win)
				return nil
			}
		}
		labels = MaskPatchLabels(mask, id, grid)
		return nil
	})
	if err != nil && sizeErr == nil {
		return nil, false, fmt.Errorf("mask of %s: %w", d.Item(i).ID, err)
	}
	return labels, err == nil, err
}

// imageSize reads only the image header.
func imageSize(path string) (w, h int, err error) {
	f, err := openRegular(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	cfg, _, err := image.DecodeConfig(bufio.NewReader(f))
	if err != nil {
		return 0, 0, fmt.Errorf("%s: cannot read image size: %v", path, err)
	}
	return cfg.Width, cfg.Height, nil
}

// loadCategories reads the mask category ids: line k (1-based) of
// ImageNetS_categories_im919.txt is the id of that wnid. The file's line
// order is used, as in the original, not the sorted wnids the ImageNet-S
// README describes (A19).
func (d *ImageNetS) loadCategories() {
	path := filepath.Join(d.root, categoriesFile)
	data, err := readRegular(path)
	if err != nil {
		d.catErr = fmt.Errorf("segmentation category ids: %w", err)
		return
	}
	d.catIDs = map[string]int{}
	for n, line := range bytes.Split(data, []byte("\n")) {
		if w := strings.TrimSpace(string(line)); w != "" {
			if _, dup := d.catIDs[w]; dup {
				d.catErr = fmt.Errorf("%s:%d: wnid %s listed twice", path, n+1, w)
				return
			}
			d.catIDs[w] = n + 1
		}
	}
}

// StimInfoCSV writes the stimuli in the {partition}_stim_info.csv format
// (imagenet_id,index,cat,img_name,img_index), so that a run can record the
// order it used and later runs can reproduce it exactly.
func (d *ImageNetS) StimInfoCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	if err := cw.Write([]string{"imagenet_id", "index", "cat", "img_name", "img_index"}); err != nil {
		return err
	}
	for _, it := range d.items {
		rec := []string{d.wnids[it.label], strconv.Itoa(it.label), d.names[it.label], it.file, strconv.Itoa(it.imgIndex)}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}
