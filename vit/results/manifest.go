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
	"reflect"
	"slices"
	"strings"
	"time"

	"vitlens/vit"
	"vitlens/vit/preprocess"
)

// ManifestFile is the name of the manifest inside a results folder.
const ManifestFile = "manifest.json"

// Manifest says what produced a results folder. The identity fields (see
// SameRun) decide whether a folder may be resumed or merged: together they
// cover everything that changes a row. The rest is provenance.
type Manifest struct {
	Tool       string            `json:"tool"`
	Version    string            `json:"version"`
	Command    []string          `json:"command"`
	Experiment string            `json:"experiment"` // "extract", "perturb-attn", ...
	Params     map[string]string `json:"params"`     // flags that change results, by flag name (mode, drop, sites...)

	ModelPath   string `json:"model_path"`
	ModelSHA256 string `json:"model_sha256"`
	// HeadSHA256 is the hash of the --head file that replaced the model's
	// class embedding ("" for the model's own head).
	HeadSHA256 string `json:"head_sha256,omitempty"`
	// LensSHA256 is the hash of the --lens translator file read through
	// (the tuned lens; "" for the plain lens).
	LensSHA256 string `json:"lens_sha256,omitempty"`
	Family     string `json:"family"`
	Preset     string `json:"preset"`
	// PresetSource says whether the preset was given, inferred (from what)
	// or assumed; provenance, not identity.
	PresetSource preprocess.PresetSource `json:"preset_source"`
	Config       vit.Config              `json:"config"`
	// ClassesSHA256 identifies the class names (--classes or the model's own).
	ClassesSHA256 string `json:"classes_sha256,omitempty"`

	Dataset string `json:"dataset"`
	// DatasetRoot is the absolute, cleaned dataset root: the same images
	// under another folder are another run.
	DatasetRoot string `json:"dataset_root"`
	// ImagesSHA256 fingerprints the selected image list (dataset.Fingerprint):
	// files added, removed, renamed or resized under the same root change it.
	ImagesSHA256 string `json:"images_sha256,omitempty"`
	// Selection holds the selection flags as "flag=value" words.
	Selection string `json:"selection"`
	// Total is the number of images in this run, after selection and sharding.
	Total int `json:"total"`
	// ChunkSize is the number of images per chunk. Chunk k always covers images
	// [k*ChunkSize, (k+1)*ChunkSize) of the unsharded selection, so shards of one
	// run never share a chunk index.
	ChunkSize int     `json:"chunk_size"`
	Seed      *uint64 `json:"seed,omitempty"`
	Format    Format  `json:"format"`          // set by Create
	Shard     string  `json:"shard,omitempty"` // "i/n", or "" for a whole run
	// ShardFrom says where `--shard auto` found the shard (the scheduler's
	// environment variables); a record only, not part of the run's identity.
	ShardFrom string `json:"shard_from,omitempty"`
	// Schema lists the tables the run writes with their columns (TableOf).
	// Nil in folders made before it was recorded; their columns are read
	// from their part files when they are resumed or merged.
	Schema []Table `json:"schema,omitempty"`

	// Backend is the backend that started the run; a resumed run may have used
	// another one for later chunks.
	Backend    string    `json:"backend"`
	Created    time.Time `json:"created"`
	MergedFrom []string  `json:"merged_from,omitempty"` // shard folders, set by Merge
}

// SameRun says, when o does not describe the same run as m (so m's folder
// cannot be resumed by o), in which fields they differ, in the user's words:
// "was made with --root /a/set, not /b/set".
func (m Manifest) SameRun(o Manifest) error { return madeWith(runDiff(m, o, true)) }

// field is one identity field of two manifests: the flag that sets it and
// its two values ("" when unset).
type field struct{ flag, x, y string }

func madeWith(diffs []string) error {
	if len(diffs) == 0 {
		return nil
	}
	return fmt.Errorf("was made with %s", strings.Join(diffs, "; with "))
}

// runDiff lists the identity fields in which b differs from a, each named by
// the flag that sets it: "--root /a/set, not /b/set". Shards of one run
// differ in their shard index and Total only, so merging compares with
// whole=false.
func runDiff(a, b Manifest, whole bool) []string {
	if a.ImagesSHA256 == "" && b.ImagesSHA256 != "" {
		// Its root and image list are unknown: resuming could mix datasets.
		return []string{fmt.Sprintf("vitlens %s, which did not record the dataset's image list", a.Version)}
	}
	fields := []field{
		{"the command", a.Experiment, b.Experiment},
		{"--model of sha256", short(a.ModelSHA256), short(b.ModelSHA256)},
		{"--head of sha256", short(a.HeadSHA256), short(b.HeadSHA256)},
		{"--lens of sha256", short(a.LensSHA256), short(b.LensSHA256)},
		{"--model family", a.Family, b.Family},
		{"--preset", a.Preset, b.Preset},
	}
	fields = append(fields, configDiff(a.Config, b.Config)...)
	fields = append(fields,
		field{"--classes of sha256", short(a.ClassesSHA256), short(b.ClassesSHA256)},
		field{"--root", a.DatasetRoot, b.DatasetRoot},
		field{"the dataset (--data)", a.Dataset, b.Dataset},
	)
	if a.DatasetRoot == b.DatasetRoot {
		fields = append(fields, field{"the images under --root " + a.DatasetRoot + " (the dataset changed since): list sha256", short(a.ImagesSHA256), short(b.ImagesSHA256)})
	}
	fields = append(fields, selectionDiff(a.Selection, b.Selection)...)
	fields = append(fields,
		field{"--chunk", fmt.Sprint(a.ChunkSize), fmt.Sprint(b.ChunkSize)},
		field{"--random", seedString(a.Seed), seedString(b.Seed)},
		field{"--format", string(a.Format), string(b.Format)},
	)
	if whole {
		fields = append(fields,
			field{"--shard", a.Shard, b.Shard},
			field{"a total of images", fmt.Sprint(a.Total), fmt.Sprint(b.Total)})
	} else {
		fields = append(fields, field{"--shard", shardCount(a.Shard), shardCount(b.Shard)})
	}
	keys := slices.Sorted(maps.Keys(a.Params))
	for _, k := range slices.Sorted(maps.Keys(b.Params)) {
		if _, ok := a.Params[k]; !ok {
			keys = append(keys, k)
		}
	}
	for _, k := range keys {
		fields = append(fields, field{"--" + strings.ReplaceAll(k, "_", "-"), a.Params[k], b.Params[k]})
	}
	var diffs []string
	for _, f := range fields {
		if f.x == f.y {
			continue
		}
		switch {
		case f.x == "":
			diffs = append(diffs, fmt.Sprintf("no %s, not %s %s", f.flag, f.flag, f.y))
		case f.y == "":
			diffs = append(diffs, fmt.Sprintf("%s %s, not without it", f.flag, f.x))
		default:
			diffs = append(diffs, fmt.Sprintf("%s %s, not %s", f.flag, f.x, f.y))
		}
	}
	return diffs
}

// configDiff names each architecture field that differs (set by the
// checkpoint, --config or --heads).
func configDiff(a, b vit.Config) []field {
	var out []field
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	for i := range va.NumField() {
		x, y := fmt.Sprint(va.Field(i).Interface()), fmt.Sprint(vb.Field(i).Interface())
		if x != y {
			name, _, _ := strings.Cut(va.Type().Field(i).Tag.Get("json"), ",")
			out = append(out, field{"--config/--heads " + name, x, y})
		}
	}
	return out
}

// selectionDiff compares two Selection strings word by word when both are
// "flag=value" words, naming each flag; otherwise as a whole.
func selectionDiff(a, b string) []field {
	if a == b {
		return nil
	}
	wa, oka := selectionWords(a)
	wb, okb := selectionWords(b)
	if !oka || !okb {
		return []field{{"the selection", a, b}}
	}
	keys := slices.Sorted(maps.Keys(wa))
	for _, k := range slices.Sorted(maps.Keys(wb)) {
		if _, ok := wa[k]; !ok {
			keys = append(keys, k)
		}
	}
	var out []field
	for _, k := range keys {
		if wa[k] != wb[k] {
			out = append(out, field{"--" + k, wa[k], wb[k]})
		}
	}
	return out
}

func selectionWords(s string) (map[string]string, bool) {
	w := map[string]string{}
	for _, f := range strings.Fields(s) {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			return nil, false
		}
		w[k] = v
	}
	return w, true
}

// short keeps hashes readable in messages.
func short(h string) string {
	if len(h) > 16 {
		return h[:12] + "…"
	}
	return h
}

// shardCount keeps the n of a shard "i/n": the index differs between shards.
func shardCount(s string) string {
	if s == "" {
		return ""
	}
	_, n, _ := strings.Cut(s, "/")
	return "i/" + n
}

func seedString(s *uint64) string {
	if s == nil {
		return ""
	}
	return fmt.Sprint(*s)
}

// ReadManifest reads the manifest.json of dir (a folder or an s3:// URL).
func ReadManifest(dir string) (Manifest, error) {
	st, err := openStore(dir)
	if err != nil {
		return Manifest{}, err
	}
	return readManifest(st)
}

// openFolder opens the results folder dir and reads its manifest.
func openFolder(dir string) (store, Manifest, error) {
	st, err := openStore(dir)
	if err != nil {
		return nil, Manifest{}, err
	}
	m, err := readManifest(st)
	if err != nil {
		return nil, Manifest{}, fmt.Errorf("results dir %s: %w", dir, err)
	}
	return st, m, nil
}

func readManifest(st store) (Manifest, error) {
	b, err := st.get(ManifestFile)
	if err != nil {
		return Manifest{}, err
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return Manifest{}, fmt.Errorf("%s: %w", st.where(ManifestFile), err)
	}
	return m, nil
}

// writeManifest creates the manifest; fs.ErrExist when one is there.
func writeManifest(st store, m Manifest) error {
	b, err := encodeManifest(st, m)
	if err != nil {
		return err
	}
	return st.putNew(ManifestFile, b)
}

// replaceManifest replaces the manifest, atomically, under the folder's
// lock (a resumed folder's schema recorded once its parts' columns match).
func replaceManifest(st store, m Manifest) error {
	b, err := encodeManifest(st, m)
	if err != nil {
		return err
	}
	_, err = st.put(ManifestFile, func(w io.Writer) error {
		_, err := w.Write(b)
		return err
	})
	return err
}

func encodeManifest(st store, m Manifest) ([]byte, error) {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encoding manifest for %s: %w", st.where(""), err)
	}
	return append(b, '\n'), nil
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
