package dataset

import (
	"fmt"

	"path/filepath"

	"vitlens/vit"
	"vitlens/vit/preprocess"
)

// Input decodes item i and preprocesses it into the model's input tensor
// with p. Images stored as files go straight from file to tensor under
// preprocess's process-wide bound on full-size pixels
// (preprocess.InFlightPixels), so a run's memory does not grow with its
// thread count however large the images; the others are built from the
// dataset's own records (the pixel limit is checked when it is opened).
func Input(ds Dataset, i int, p preprocess.Preset, imageSize int) (*vit.Tensor, error) {
	if f, ok := ds.(imageFiler); ok {
		path, isFile, err := f.imageFile(i)
		if err != nil {
			return nil, err
		}
		if isFile {
			file, err := openRegular(path)
			if err != nil {
				return nil, err
			}
			defer file.Close()
			return preprocess.DecodeInput(file, path, p, imageSize)
		}
	}
	img, err := ds.Image(i)
	if err != nil {
		return nil, err
	}
	t, err := p.Apply(img, imageSize)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ds.Item(i).ID, err)
	}
	return t, nil
}

// imageFiler is a dataset whose images are files: imageFile returns item
// i's path, or isFile false when that item is not read from a file.
type imageFiler interface {
	imageFile(i int) (path string, isFile bool, err error)
}

func (d *folder) imageFile(i int) (string, bool, error) {
	if err := checkIndex(d.Name(), i, len(d.items)); err != nil {
		return "", false, err
	}
	it := d.items[i]
	return filepath.Join(d.root, d.dirs[it.label], it.file), true, nil
}

func (d *ImageNetS) imageFile(i int) (string, bool, error) {
	if err := checkIndex(d.Name(), i, len(d.items)); err != nil {
		return "", false, err
	}
	return d.imagePath(i), true, nil
}

func (v *view) imageFile(i int) (string, bool, error) {
	j, err := v.parentIndex(i)
	if err != nil {
		return "", false, err
	}
	if f, ok := v.parent.(imageFiler); ok {
		return f.imageFile(j)
	}
	return "", false, nil
}
