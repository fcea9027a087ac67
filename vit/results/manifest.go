// Package results stores the output of vitlens's batch experiments: one folder
// per run holding a manifest and tidy tables (Parquet or CSV). Rows arrive in
// chunks of images; each chunk's part files land atomically, so an interrupted
// run resumes at the first unfinished chunk and shards of one run merge by
// chunk index. Nothing here holds more than one chunk of rows in memory.
package results

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"time"

	"vitlens/vit"
	"vitlens/vit/preprocess"
)

// ManifestFile is the name of the manifest inside a results folder.
const ManifestFile = "manifest.json"

// Manifest says what produced a results folder. The identity fields (see
// SameRun) decide whether a folder may be resumed or merged; the rest is
// provenance.
type Manifest struct {
	Tool       string            `json:"tool"`
	Version    string            `json:"version"`
	Command    []string          `json:"command"`
	Experiment string            `json:"experiment"` // "extract", "perturb-attn", ...
	Params     map[string]string `json:"params"`     // flags that change results (mode, drop, sites, topk...)

	ModelPath   string `json:"model_path"`
	ModelSHA256 string `json:"model_sha256"`
	Family      string `json:"family"`
	Preset      string `json:"preset"`
	// PresetSource says whether the preset was given, inferred (from what)
	// or assumed; provenance, not identity.
	PresetSource preprocess.PresetSource `json:"preset_source"`
	Config       vit.Config              `json:"config"`

	Dataset     string `json:"dataset"`
	DatasetRoot string `json:"dataset_root"`
	Selection   string `json:"selection"`
	// Total is the number of images in this run, after selection and sharding.
	Total int `json:"total"`
	// ChunkSize is the number of images per chunk. Chunk k always covers images
	// [k*ChunkSize, (k+1)*ChunkSize) of the unsharded selection, so shards of one
	// run never share a chunk index.
	ChunkSize int     `json:"chunk_size"`
	Seed      *uint64 `json:"seed,omitempty"`
	Format    Format  `json:"format"`          // set by Create
	Shard     string  `json:"shard,omitempty"` // "i/n", or "" for a whole run

	// Backend is the backend that started the run; a resumed run may have used
	// another one for later chunks.
	Backend    string    `json:"backend"`
	Created    time.Time `json:"created"`
	MergedFrom []string  `json:"merged_from,omitempty"` // shard folders, set by Merge
}

// SameRun reports the first identity field in which o differs from m, or nil
// when o describes the same run (so its folder can be resumed).
func (m Manifest) SameRun(o Manifest) error { return diffRun(m, o, true) }

// diffRun compares identity fields. Shards of one run differ in Shard and
// Total only, so merging compares with whole=false.
func diffRun(a, b Manifest, whole bool) error {
	type field struct {
		name string
		x, y string
	}
	fields := []field{
		{"experiment", a.Experiment, b.Experiment},
		{"model hash", a.ModelSHA256, b.ModelSHA256},
		{"family", a.Family, b.Family},
		{"preset", a.Preset, b.Preset},
		{"config", fmt.Sprintf("%+v", a.Config), fmt.Sprintf("%+v", b.Config)},
		{"dataset", a.Dataset, b.Dataset},
		{"selection", a.Selection, b.Selection},
		{"chunk size", fmt.Sprint(a.ChunkSize), fmt.Sprint(b.ChunkSize)},
		{"seed", seedString(a.Seed), seedString(b.Seed)},
		{"format", string(a.Format), string(b.Format)},
	}
	if whole {
		fields = append(fields,
			field{"total", fmt.Sprint(a.Total), fmt.Sprint(b.Total)},
			field{"shard", a.Shard, b.Shard})
	}
	for _, f := range fields {
		if f.x != f.y {
			return fmt.Errorf("%s differs (%q vs %q)", f.name, f.x, f.y)
		}
	}
	keys := slices.Sorted(maps.Keys(a.Params))
	for k := range b.Params {
		if _, ok := a.Params[k]; !ok {
			keys = append(keys, k)
		}
	}
	for _, k := range keys {
		x, okx := a.Params[k]
		y, oky := b.Params[k]
		if x != y || okx != oky {
			return fmt.Errorf("parameter %s differs (%s vs %s)", k, paramString(x, okx), paramString(y, oky))
		}
	}
	return nil
}

func seedString(s *uint64) string {
	if s == nil {
		return "none"
	}
	return fmt.Sprint(*s)
}

func paramString(v string, ok bool) string {
	if !ok {
		return "unset"
	}
	return fmt.Sprintf("%q", v)
}

// ReadManifest reads dir's manifest.json.
func ReadManifest(dir string) (Manifest, error) {
	path := filepath.Join(dir, ManifestFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return Manifest{}, err
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return Manifest{}, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

func writeManifest(dir string, m Manifest) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding manifest for %s: %w", dir, err)
	}
	b = append(b, '\n')
	return writeAtomic(filepath.Join(dir, ManifestFile), func(w io.Writer) error {
		_, err := w.Write(b)
		return err
	})
}

// FileSHA256 returns the hex SHA-256 of a file, read in a stream.
func FileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("hashing %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
