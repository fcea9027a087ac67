package dataset

import (
	"cmp"
	"errors"
	"fmt"
	"image"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// imageExts are the extensions preprocess.Decode can read.
var imageExts = map[string]bool{
	".jpg": true, ".jpeg": true, ".png": true, ".gif": true, ".bmp": true, ".webp": true,
}

// folder is an image folder with one sub-folder per class.
//
// Without classes.txt, the sorted folder names are the classes. With
// classes.txt at the root, its line k ("folder" or "folder display name",
// so an ImageNet LOC_synset_mapping.txt works as is) is class k: listed
// classes need no folder (the file describes the model's classes, not the
// data), but a folder it does not list is an error, since its images would
// have no label.
//
// An empty class folder is not an error but is reported by Skipped, as are
// non-image files and nested folders, which are not read.
type folder struct {
	root    string
	dirs    []string // class folder names, by class index
	names   []string // class display names
	items   []folderItem
	skipped []string
}

type folderItem struct {
	label int
	file  string
}

func openFolder(root string, opt Options) (*folder, error) {
	entries, err := os.ReadDir(root) // sorted by name
	if err != nil {
		return nil, fmt.Errorf("folder dataset: %v", err)
	}
	d := &folder{root: root}
	var found []string
	for _, e := range entries {
		switch p := filepath.Join(root, e.Name()); {
		case isDir(p, e):
			found = append(found, e.Name())
		case e.Name() != "classes.txt":
			d.skipped = append(d.skipped, p+": not a class folder")
		}
	}
	classOf := map[string]int{}
	listPath := filepath.Join(root, "classes.txt")
	if d.dirs, d.names, err = readClassList(listPath); err == nil {
		for i, c := range d.dirs {
			classOf[c] = i
		}
		for _, c := range found {
			if _, ok := classOf[c]; !ok {
				return nil, fmt.Errorf("%s: class folder %s is not listed in %s", filepath.Join(root, c), c, listPath)
			}
		}
	} else if errors.Is(err, fs.ErrNotExist) {
		d.dirs, d.names = found, found
		for i, c := range found {
			classOf[c] = i
		}
	} else {
		return nil, err
	}
	if len(d.dirs) == 0 {
		return nil, fmt.Errorf("folder dataset %s: no class folders", root)
	}
	k := perClass(opt, -1)
	for _, c := range found {
		dir := filepath.Join(root, c)
		files, err := os.ReadDir(dir)
		if err != nil {
			return nil, err
		}
		n := 0
		for _, f := range files {
			p := filepath.Join(dir, f.Name())
			if isDir(p, f) || !imageExts[strings.ToLower(filepath.Ext(f.Name()))] {
				d.skipped = append(d.skipped, p+": not an image file")
				continue
			}
			if !isRegular(p, f) {
				d.skipped = append(d.skipped, p+": "+errNotRegular)
				continue
			}
			if k < 0 || n < k {
				d.items = append(d.items, folderItem{label: classOf[c], file: f.Name()})
				n++
			}
		}
		if n == 0 {
			d.skipped = append(d.skipped, dir+": empty class folder")
		}
	}
	if len(d.items) == 0 {
		return nil, fmt.Errorf("folder dataset %s: no images in any class folder", root)
	}
	// classes.txt may order classes unlike the folder names; items follow
	// the class order (stable, so file order is kept within a class).
	slices.SortStableFunc(d.items, func(a, b folderItem) int { return cmp.Compare(a.label, b.label) })
	return d, nil
}

// readClassList reads classes.txt; a missing file wraps fs.ErrNotExist.
func readClassList(path string) (dirs, names []string, err error) {
	data, err := readRegular(path)
	if err != nil {
		return nil, nil, err
	}
	seen := map[string]int{}
	for n, line := range strings.Split(strings.TrimRight(string(data), " \t\r\n"), "\n") {
		dir, name, _ := strings.Cut(strings.TrimSpace(line), " ")
		if dir == "" {
			return nil, nil, fmt.Errorf("%s:%d: empty line (line k must name class k)", path, n+1)
		}
		if strings.ContainsAny(dir, `/\`) || dir == "." || dir == ".." {
			return nil, nil, fmt.Errorf("%s:%d: %q is not a folder name", path, n+1, dir)
		}
		if prev, dup := seen[dir]; dup {
			return nil, nil, fmt.Errorf("%s:%d: class %s already on line %d", path, n+1, dir, prev)
		}
		seen[dir] = n + 1
		if name = strings.TrimSpace(name); name == "" {
			name = dir
		}
		dirs = append(dirs, dir)
		names = append(names, name)
	}
	return dirs, names, nil
}

func (d *folder) Name() string      { return "folder:" + filepath.Base(d.root) }
func (d *folder) Len() int          { return len(d.items) }
func (d *folder) Classes() []string { return d.names }
func (d *folder) Skipped() []string { return d.skipped }

func (d *folder) Item(i int) Item {
	it := d.items[i]
	c := d.dirs[it.label]
	return Item{Index: i, ID: c + "/" + it.file, Label: it.label, Concept: c}
}

func (d *folder) Image(i int) (image.Image, error) {
	path, _, err := d.imageFile(i)
	if err != nil {
		return nil, err
	}
	return decodePath(path)
}

func (d *folder) PatchLabels(i int, grid int) ([]uint8, bool, error) {
	return nil, false, checkIndex(d.Name(), i, len(d.items))
}
