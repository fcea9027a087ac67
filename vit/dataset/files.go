package dataset

import (
	"fmt"
	"io"
	"io/fs"
	"os"
)

// Only regular files are opened: opening a FIFO blocks until something
// writes to it, so one named 2.png in a class folder would hang a run, and
// a device could be read without end.

// errNotRegular is the reason given for a path that is no regular file.
const errNotRegular = "not a regular file (a FIFO, device or socket?)"

// isRegular says whether a listed entry is a regular file, following a
// symbolic link to its target.
func isRegular(path string, e fs.DirEntry) bool {
	if e.Type()&fs.ModeSymlink != 0 {
		st, err := os.Stat(path)
		return err == nil && st.Mode().IsRegular()
	}
	return e.Type().IsRegular()
}

// openRegular opens path for reading if it is a regular file.
func openRegular(path string) (*os.File, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err // *PathError names the file
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: %s", path, errNotRegular)
	}
	return os.Open(path)
}

// readRegular is os.ReadFile for regular files only.
func readRegular(path string) ([]byte, error) {
	f, err := openRegular(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}
