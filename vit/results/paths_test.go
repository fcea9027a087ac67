package results

import "path/filepath"

// Local paths of a folder's files, for tests that damage them.
func partPath(dir, table string, chunk int, f Format) string {
	return filepath.Join(dir, filepath.FromSlash(partName(table, chunk, f)))
}

func finalPath(dir, table string, f Format) string {
	return filepath.Join(dir, finalName(table, f))
}

func markerPath(dir string, chunk int) string {
	return filepath.Join(dir, filepath.FromSlash(markerName(chunk)))
}

func rel(dir, path string) string {
	if r, err := filepath.Rel(dir, path); err == nil {
		return filepath.ToSlash(r)
	}
	return path
}
