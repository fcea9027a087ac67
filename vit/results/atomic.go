package results

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// tmpMarker is part of every temporary file name, so a crash's leftovers can
// be recognised and removed when the run is reopened.
const tmpMarker = ".tmp-"

// writeAtomic writes path through a temporary file in the same directory,
// fsyncs it and renames it into place: readers see the old file or the whole
// new one, never a torn write.
func writeAtomic(path string, fill func(w io.Writer) error) (err error) {
	dir, base := filepath.Split(path)
	f, err := os.CreateTemp(dir, "."+base+tmpMarker+"*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	bw := bufio.NewWriterSize(f, 1<<20)
	if err = fill(bw); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err = bw.Flush(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("closing %s: %w", path, err)
	}
	if err = os.Rename(tmp, path); err != nil {
		return err
	}
	syncDir(dir)
	return nil
}

// linkOrCopyAtomic puts a copy of src at dst atomically. Part files are never
// modified in place (only replaced by rename), so a hard link is a safe copy
// and saves the disk space of a second one.
func linkOrCopyAtomic(src, dst string) error {
	dir, base := filepath.Split(dst)
	tmp := filepath.Join(dir, "."+base+tmpMarker+"link")
	os.Remove(tmp)
	if err := os.Link(src, tmp); err == nil {
		if err := os.Rename(tmp, dst); err != nil {
			os.Remove(tmp)
			return err
		}
		syncDir(dir)
		return nil
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	return writeAtomic(dst, func(w io.Writer) error {
		_, err := io.Copy(w, in)
		return err
	})
}

// syncDir makes a rename durable. Some filesystems refuse fsync on a
// directory; the rename itself is still atomic there, so the error is dropped.
func syncDir(dir string) {
	if dir == "" {
		dir = "."
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}

// removeTemps deletes leftovers of interrupted atomic writes in dir.
func removeTemps(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !e.IsDir() && strings.Contains(e.Name(), tmpMarker) {
			if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

// WriteFile writes data to path atomically (temporary file, fsync, rename),
// for outputs that live beside a run rather than in one (translator files).
func WriteFile(path string, data []byte) error {
	return writeAtomic(path, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}
