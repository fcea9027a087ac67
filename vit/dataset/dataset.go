// Package dataset reads the stimulus sets of the paper's experiments
// (method spec §1.1–1.3 and §1.5) for the batch runs of the vitlens binary:
// ImageNet-S919, the CIFAR-100 test split, Fashion-MNIST and a plain folder
// of class sub-folders.
//
// Opening a dataset only indexes it (file names, labels); images and masks
// are decoded one at a time when asked for, so a run never holds the whole
// set in memory. The one exception is Fashion-MNIST, whose gzipped IDX file
// cannot be read at random: its raw bytes (7.8 MB for t10k, 47 MB for train)
// are kept, but images are built only on request.
//
// Every Dataset is safe for concurrent use once opened.
//
// # Stimulus order
//
// Item(i).Index is the item's position in the full stimulus order of the
// opened dataset. It stays the same through Select, so per-image results of
// sharded or limited runs can be merged by Index. The orders are:
//
//   - imagenet-s: the rows of {partition}_stim_info.csv when that file exists
//     (the published order); otherwise categories sorted by wnid, each
//     contributing its first PerClass JPEGs sorted by file name.
//   - cifar100: by fine label 0..99, then by position in test.bin.
//   - fmnist: file order (with PerClass > 0: by label, then file order).
//   - folder: by class index, then by file name.
//
// # Bad input
//
// Whatever makes the stimulus list itself wrong is an error of Open naming
// the file (and line or record): a missing LOC_synset_mapping.txt, a CSV row
// whose class is not in it or whose index disagrees, a truncated test.bin or
// IDX file, a class folder that classes.txt does not list. What only
// shrinks the set is left out and reported by Skipped: excluded and
// under-filled ImageNet-S categories, empty class folders, non-image files.
// Per-item problems (an undecodable image, a missing or wrongly sized mask)
// surface from Image and PatchLabels with the file's path, so a batch run
// can count and skip those items. Image returns the image as stored (gray,
// YCbCr, CMYK...); converting to RGB belongs to the preprocessing.
//
// # Deviations from the original code
//
//   - A19: without the CSV the original takes categories and images in the
//     file system's iteration order, which differs between machines. Here both
//     are sorted by name (byte order, which equals Python's sorted() on str),
//     so the stimuli are reproducible; StimInfoCSV writes the order used, so a
//     run can record it.
//   - A18: ignore pixels (1000) and pixels of other categories are context
//     (0), as in the original; the mask is read at full resolution and
//     downsampled with OpenCV's exact INTER_NEAREST arithmetic (see
//     MaskPatchLabels). With a cropping preset (deit, miil) the original
//     still samples the whole mask, so labels describe pixels the model
//     never saw; here (Options.Preset) the mask is first resized, nearest
//     neighbour, and cropped exactly as the image (MaskPatchLabelsIn).
//   - The original never checks that a mask has its image's size; here a
//     mismatch is an error wrapping ErrMaskSize, because the patch grid would
//     silently misalign.
//   - Masks are looked up under {partition}-segmentation, not always
//     validation-segmentation, so test-partition items never borrow the
//     validation mask of an unrelated image that happens to share a name.
package dataset

import (
	"errors"
	"fmt"
	"image"

	"vitlens/vit/preprocess"
)

// Item describes one stimulus without decoding it.
type Item struct {
	// Index is the position in the opened dataset's stimulus order (see the
	// package doc); it is kept unchanged by Select.
	Index int
	// ID names the stimulus uniquely within its dataset, e.g.
	// "n01440764/ILSVRC2012_val_00000293.JPEG", "cifar100-test-123" (record
	// 123 of test.bin) or "fmnist-t10k-42".
	ID string
	// Label is the class index in the model's class order (0..C-1).
	Label int
	// Concept is the name the original code files results under: the wnid
	// for ImageNet-S, the label string "0".."99" for CIFAR-100 ("0".."9" for
	// Fashion-MNIST), the class folder name for folders.
	Concept string
}

// Dataset is an indexed stimulus set. Item must be called with
// 0 <= i < Len(); Image and PatchLabels return an error for other i.
type Dataset interface {
	Name() string
	Len() int
	// Classes returns the class names in class-index order (len C).
	Classes() []string
	Item(i int) Item
	// Image decodes item i (an RGB or gray image, at its stored size).
	Image(i int) (image.Image, error)
	// PatchLabels returns the grid×grid row-major token labels of item i:
	// 1 for a class-labelled token, 0 for context. ok is false (and the
	// error nil) when the dataset has no segmentation masks at all.
	PatchLabels(i int, grid int) (labels []uint8, ok bool, err error)
}

// Skipper is implemented by datasets that left folders or files out while
// indexing (excluded or under-filled categories, empty class folders,
// non-image files). Each entry names the path and the reason.
type Skipper interface {
	Skipped() []string
}

// Skipped returns what ds left out while indexing, or nil if it reports
// nothing. Views made by Select report their parent's skips.
func Skipped(ds Dataset) []string {
	if s, ok := ds.(Skipper); ok {
		return s.Skipped()
	}
	return nil
}

// ErrMaskSize is wrapped by PatchLabels errors for a mask whose size differs
// from its image's. A missing mask wraps fs.ErrNotExist. Callers that skip
// such items can tell the two apart with errors.Is.
var ErrMaskSize = errors.New("mask size differs from image size")

// Options tunes Open. The zero value gives the paper's settings.
type Options struct {
	// Partition is the ImageNet-S split folder: "validation" (default) or
	// "test" (the linear probes' training images).
	Partition string
	// PerClass is the number of images taken per class: 0 means the kind's
	// default (5 for imagenet-s and cifar100, all for fmnist and folder), a
	// negative value means all. The ImageNet-S CSV, when present, fixes the
	// stimuli and PerClass is not used.
	PerClass int
	// FMNISTSplit is "t10k" (default) or "train".
	FMNISTSplit string
	// Preset and ImageSize describe the model's preprocessing, so that
	// ImageNet-S masks follow the image: with a preset that crops (deit,
	// miil) the mask is resized and cropped as the image is before the grid
	// sampling (MaskPatchLabelsIn). Nil, or a preset that only resizes,
	// samples the full mask as the original does.
	Preset    *preprocess.Preset
	ImageSize int
}

// DefaultFMNISTRoot is where Debian's dataset-fashion-mnist package installs
// the files; Open("fmnist", "", ...) reads from there.
const DefaultFMNISTRoot = "/usr/share/datasets/fashion-mnist"

// Kinds lists the dataset kinds Open accepts.
var Kinds = []string{"imagenet-s", "cifar100", "fmnist", "folder"}

// Open indexes the dataset of the given kind under root.
func Open(kind, root string, opt Options) (Dataset, error) {
	if kind != "fmnist" && root == "" {
		return nil, fmt.Errorf("dataset %s: no root folder given", kind)
	}
	switch kind {
	case "imagenet-s":
		return openImageNetS(root, opt)
	case "cifar100":
		return openCIFAR100(root, opt)
	case "fmnist":
		if root == "" {
			root = DefaultFMNISTRoot
		}
		return openFMNIST(root, opt)
	case "folder":
		return openFolder(root, opt)
	}
	return nil, fmt.Errorf("unknown dataset kind %q (want one of %v)", kind, Kinds)
}

// perClass resolves Options.PerClass against a kind's default; -1 means all.
func perClass(opt Options, def int) int {
	switch {
	case opt.PerClass == 0:
		return def
	case opt.PerClass < 0:
		return -1
	}
	return opt.PerClass
}

func checkIndex(name string, i, n int) error {
	if i < 0 || i >= n {
		return fmt.Errorf("%s: item %d out of range [0, %d)", name, i, n)
	}
	return nil
}

// byLabel returns the positions of labels ordered by label, then by
// position, keeping at most k per label (k < 0: all). It is the order of the
// original MyCIFAR100, which keys its stimuli by label.
func byLabel(labels []uint8, numClasses, k int) []int {
	buckets := make([][]int, numClasses)
	for pos, l := range labels {
		if k < 0 || len(buckets[l]) < k {
			buckets[l] = append(buckets[l], pos)
		}
	}
	var out []int
	for _, b := range buckets {
		out = append(out, b...)
	}
	return out
}
