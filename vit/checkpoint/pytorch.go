package checkpoint

import (
	"archive/zip"
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/big"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/nlpodyssey/gopickle/pickle"
	"github.com/nlpodyssey/gopickle/types"

	"vitlens/vit"
)

// gopickle's pytorch.Load only opens files by name, and the browser has no
// file system, so the archive is read here from memory with gopickle's
// unpickler and our own storage handling (which also bounds every
// allocation by the bytes actually present).

const maxPickleBytes = 64 << 20 // a ViT state_dict's data.pkl is tens of KB

// torchStorages maps torch's storage classes to the dtype names of
// safetensors, so both formats share one widening table.
var torchStorages = map[string]string{
	"FloatStorage": "F32", "HalfStorage": "F16", "BFloat16Storage": "BF16",
	"DoubleStorage": "F64", "LongStorage": "I64", "IntStorage": "I32",
	"ShortStorage": "I16", "CharStorage": "I8", "ByteStorage": "U8", "BoolStorage": "BOOL",
}

func readPyTorch(data []byte) (map[string]*vit.Tensor, error) {
	var obj any
	var err error
	budget := pickleBudget(len(data))
	if bytes.HasPrefix(data, []byte("PK")) {
		obj, err = unpickleZip(data, budget)
	} else {
		obj, err = unpickleLegacy(data, budget)
	}
	if err != nil {
		return nil, err
	}
	raw, err := findStateDict(obj, 0)
	if err != nil {
		return nil, err
	}
	out := make(map[string]*vit.Tensor, len(raw))
	for name, t := range raw {
		v, err := t.materialize()
		if err != nil {
			return nil, fmt.Errorf("tensor %q: %w", name, err)
		}
		out[name] = v
	}
	return out, nil
}

// unpickleZip reads torch.save's default (zip) format: <root>/data.pkl holds
// the pickle, <root>/data/<key> each storage's raw little-endian bytes.
func unpickleZip(data []byte, budget int) (any, error) {
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return nil, fmt.Errorf("PyTorch zip archive unreadable: %v", err)
	}
	records := make(map[string]*zip.File, len(zr.File))
	var pkl *zip.File
	npy := false
	for _, f := range zr.File {
		records[f.Name] = f
		switch base := path.Base(f.Name); {
		case base == "constants.pkl":
			return nil, errors.New("TorchScript archive: save model.state_dict() with torch.save instead")
		case base == "data.pkl" && pkl == nil:
			pkl = f
		case strings.HasSuffix(base, ".npy"):
			npy = true
		}
	}
	if pkl == nil {
		if npy {
			return nil, errors.New("a NumPy .npz archive (JAX weights?), not a PyTorch checkpoint: convert it to safetensors")
		}
		return nil, errors.New("zip archive without data.pkl: not a PyTorch checkpoint")
	}
	root := strings.TrimSuffix(pkl.Name, "data.pkl")
	if f := records[root+"byteorder"]; f != nil {
		b, _, err := readRecord(f, 16)
		if err != nil {
			return nil, err
		}
		if strings.TrimSpace(string(b)) == "big" {
			return nil, errors.New("big-endian PyTorch checkpoint: not supported")
		}
	}
	end, err := scanRecord(pkl, budget)
	if err != nil {
		return nil, err
	}
	p, _, err := readRecord(pkl, int64(end))
	if err != nil {
		return nil, err
	}
	// Torch stores records uncompressed; a deflated archive may expand, but
	// not beyond this, so a small forged file cannot claim gigabytes.
	room := 4*uint64(len(data)) + 1<<20
	storages := map[string]*storage{}
	load := func(id any) (any, error) {
		t, ok := id.(*types.Tuple)
		if !ok || t.Len() < 5 || t.Get(0) != "storage" {
			return nil, fmt.Errorf("unexpected persistent id %s in data.pkl", describe(id))
		}
		cls, ok1 := t.Get(1).(*storageClass)
		key, ok2 := t.Get(2).(string)
		numel, ok3 := t.Get(4).(int)
		if !ok1 || !ok2 || !ok3 || numel < 0 {
			return nil, fmt.Errorf("unsupported storage %s (dtype not float or int?)", describe(id))
		}
		if s := storages[key]; s != nil {
			return s, nil
		}
		f := records[root+"data/"+key]
		if f == nil {
			return nil, fmt.Errorf("storage %q is missing from the archive", key)
		}
		size := dtypeSize[cls.dtype]
		if uint64(numel) > room/size {
			return nil, fmt.Errorf("storage %q: %d values announced, more than the archive can hold", key, numel)
		}
		want := uint64(numel) * size
		room -= want
		if f.UncompressedSize64 < want {
			return nil, fmt.Errorf("storage %q: archive record holds %d bytes, the pickle expects %d", key, f.UncompressedSize64, want)
		}
		b, stored, err := storedBytes(data, f)
		if stored && err == nil {
			b = b[:want] // as readRecord: the first want bytes, the CRC checked over all
		} else if !stored {
			b, _, err = readRecord(f, int64(want))
		}
		if err != nil {
			return nil, err
		}
		if uint64(len(b)) != want {
			return nil, fmt.Errorf("storage %q: %d bytes read, %d expected (file truncated?)", key, len(b), want)
		}
		vals, err := widen(cls.dtype, b)
		if err != nil {
			return nil, fmt.Errorf("storage %q: %w", key, err)
		}
		s := &storage{dtype: cls.dtype, data: vals}
		storages[key] = s
		return s, nil
	}
	return runPickle(p, budget, load)
}

// scanRecord checks the pickle record as it is decompressed, before any of
// it is kept: a forged archive can deflate a few kilobytes into 64 MB of
// opcodes, refused here after the first few hundred thousand. It returns
// the length of the pickle up to its STOP.
func scanRecord(f *zip.File, budget int) (int, error) {
	rc, err := f.Open()
	if err != nil {
		return 0, fmt.Errorf("archive record %s: %v", f.Name, err)
	}
	defer rc.Close()
	end, err := scanPickleFrom(bufio.NewReader(&limitedReader{r: rc, n: maxPickleBytes}), budget)
	if errors.Is(err, errPickleTooLong) {
		return 0, fmt.Errorf("data.pkl is larger than %d bytes: not a state_dict", maxPickleBytes)
	}
	if err != nil {
		return 0, fmt.Errorf("archive record %s: %w", f.Name, err)
	}
	return end, nil
}

// storedBytes returns a stored (uncompressed) record's bytes where they lie
// in the archive, once its CRC-32 checks out: torch writes every record
// stored, and the weights are widened into float32 right after, so copying
// them out first (readRecord) would only cost time and a second copy of the
// file in memory. stored is false where the record is compressed or its
// place or checksum cannot be taken from the directory; readRecord reads
// those.
func storedBytes(data []byte, f *zip.File) (b []byte, stored bool, err error) {
	if f.Method != zip.Store || f.CompressedSize64 != f.UncompressedSize64 || f.CRC32 == 0 {
		return nil, false, nil
	}
	off, err := f.DataOffset()
	if err != nil || off < 0 || uint64(off) > uint64(len(data)) || f.UncompressedSize64 > uint64(len(data))-uint64(off) {
		return nil, false, nil
	}
	b = data[off : uint64(off)+f.UncompressedSize64]
	if crc32.ChecksumIEEE(b) != f.CRC32 {
		return nil, true, fmt.Errorf("archive record %s: %v", f.Name, zip.ErrChecksum)
	}
	return b, true, nil
}

// readRecord reads the first limit bytes of a zip record and says whether
// there were more. Allocation follows the bytes actually decompressed, never
// a size the archive merely claims; reading one byte past the limit lets the
// zip reader verify the CRC of records that end there.
func readRecord(f *zip.File, limit int64) (b []byte, longer bool, err error) {
	rc, err := f.Open()
	if err != nil {
		return nil, false, fmt.Errorf("archive record %s: %v", f.Name, err)
	}
	defer rc.Close()
	b, err = io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, false, fmt.Errorf("archive record %s: %v", f.Name, err)
	}
	if int64(len(b)) > limit {
		return b[:limit], true, nil
	}
	return b, false, nil
}

// unpickleLegacy reads torch.save's pre-1.6 format: pickles of the magic
// number, protocol version and system info, the object pickle, the list of
// storage keys, then each storage as an 8-byte count and its raw bytes.
func unpickleLegacy(data []byte, budget int) (any, error) {
	r := data
	next := func(load func(any) (any, error)) (any, error) {
		end, err := scanPickle(r, budget)
		if err != nil {
			return nil, err
		}
		v, err := runPickle(r[:end], budget, load)
		r = r[end:]
		return v, err
	}
	magic, err := next(nil)
	if err != nil {
		return nil, err
	}
	if n, ok := magic.(*big.Int); !ok || n.Text(16) != "1950a86a20f9469cfc6c" {
		return nil, errors.New("a pickle without PyTorch's magic number: not a torch.save file")
	}
	if v, err := next(nil); err != nil {
		return nil, err
	} else if v != 1001 {
		return nil, fmt.Errorf("unsupported legacy PyTorch protocol version %s", describe(v))
	}
	if _, err := next(nil); err != nil { // system info
		return nil, err
	}
	storages := map[string]*storage{}
	obj, err := next(func(id any) (any, error) {
		t, ok := id.(*types.Tuple)
		if !ok || t.Len() < 6 || t.Get(0) != "storage" {
			return nil, fmt.Errorf("unsupported persistent id %s (a pickled nn.Module? save model.state_dict())", describe(id))
		}
		cls, ok1 := t.Get(1).(*storageClass)
		key, ok2 := t.Get(2).(string)
		numel, ok3 := t.Get(4).(int)
		if !ok1 || !ok2 || !ok3 || numel < 0 {
			return nil, fmt.Errorf("unsupported storage %s (dtype not float or int?)", describe(id))
		}
		if t.Get(5) != nil {
			return nil, errors.New("storage views in legacy checkpoints are not supported")
		}
		s := storages[key]
		if s == nil {
			s = &storage{dtype: cls.dtype, numel: numel}
			storages[key] = s
		}
		return s, nil
	})
	if err != nil {
		return nil, err
	}
	keys, err := next(nil)
	if err != nil {
		return nil, err
	}
	list, ok := keys.(*types.List)
	if !ok {
		return nil, errors.New("legacy PyTorch file: storage key list missing")
	}
	for _, k := range *list {
		key, _ := k.(string)
		s := storages[key]
		if s == nil || s.data != nil {
			return nil, fmt.Errorf("legacy PyTorch file: unexpected storage key %s", describe(k))
		}
		if len(r) < 8 {
			return nil, fmt.Errorf("storage %q: file truncated", key)
		}
		n := binary.LittleEndian.Uint64(r)
		size := dtypeSize[s.dtype]
		if n != uint64(s.numel) || n > uint64(len(r)-8)/size {
			return nil, fmt.Errorf("storage %q: %d elements announced, %d expected, %d bytes left (file truncated?)", key, n, s.numel, len(r)-8)
		}
		vals, err := widen(s.dtype, r[8:8+n*size])
		if err != nil {
			return nil, err
		}
		s.data = vals
		r = r[8+n*size:]
	}
	for key, s := range storages {
		if s.data == nil && s.numel > 0 {
			return nil, fmt.Errorf("storage %q has no data in the file", key)
		}
	}
	return obj, nil
}

// runPickle unpickles one scanned pickle with torch's classes resolved.
func runPickle(p []byte, budget int, load func(any) (any, error)) (any, error) {
	if _, err := scanPickle(p, budget); err != nil {
		return nil, err
	}
	u := pickle.NewUnpickler(bytes.NewReader(p))
	u.FindClass = findClass
	if load != nil {
		u.PersistentLoad = load
	}
	v, err := u.Load()
	if err != nil {
		return nil, fmt.Errorf("pickle: %v", err)
	}
	return v, nil
}

// findClass resolves the globals a state_dict pickle names. Anything else
// (argparse.Namespace in a training checkpoint, numpy scalars, ...) becomes
// an opaque object, so extra entries never stop the weights from loading.
func findClass(module, name string) (any, error) {
	switch module + "." + name {
	case "torch._utils._rebuild_tensor_v2":
		return rebuildTensor{}, nil
	case "torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state":
		return firstArg{}, nil
	case "torch._tensor._rebuild_from_type_v2":
		return rebuildFromType{}, nil
	}
	if dt, ok := torchStorages[name]; ok && module == "torch" {
		return &storageClass{dtype: dt}, nil
	}
	return &opaque{class: module + "." + name}, nil
}

type storageClass struct{ dtype string }

type storage struct {
	dtype string
	numel int       // legacy format: announced before the data is read
	data  []float32 // widened values
}

// torchTensor is a strided view of a storage, as _rebuild_tensor_v2 gives it.
type torchTensor struct {
	st     *storage
	offset int
	size   []int
	stride []int
}

type rebuildTensor struct{}

func (rebuildTensor) Call(args ...any) (any, error) {
	// (storage, offset, size, stride, requires_grad, hooks[, metadata])
	if len(args) < 4 {
		return nil, fmt.Errorf("_rebuild_tensor_v2: %d arguments", len(args))
	}
	st, ok1 := args[0].(*storage)
	off, ok2 := args[1].(int)
	size, ok3 := intTuple(args[2])
	stride, ok4 := intTuple(args[3])
	if !ok1 || !ok2 || !ok3 || !ok4 || len(size) != len(stride) {
		return nil, fmt.Errorf("_rebuild_tensor_v2: unexpected arguments")
	}
	return &torchTensor{st: st, offset: off, size: size, stride: stride}, nil
}

func intTuple(v any) ([]int, bool) {
	t, ok := v.(*types.Tuple)
	if !ok {
		return nil, false
	}
	out := make([]int, t.Len())
	for i := range out {
		if out[i], ok = t.Get(i).(int); !ok {
			return nil, false
		}
	}
	return out, true
}

type firstArg struct{}

func (firstArg) Call(args ...any) (any, error) {
	if len(args) == 0 {
		return nil, errors.New("_rebuild_parameter without arguments")
	}
	return args[0], nil
}

type rebuildFromType struct{}

func (rebuildFromType) Call(args ...any) (any, error) {
	// (func, type, args, state): rebuild with func(*args), drop the subclass.
	if len(args) < 3 {
		return nil, errors.New("_rebuild_from_type_v2: too few arguments")
	}
	f, ok1 := args[0].(types.Callable)
	a, ok2 := args[2].(*types.Tuple)
	if !ok1 || !ok2 {
		return nil, errors.New("_rebuild_from_type_v2: unexpected arguments")
	}
	return f.Call(*a...)
}

// opaque stands for any class we do not model. It accepts every way pickle
// builds objects, and keeps dict items so a dict subclass still yields its
// entries.
type opaque struct {
	class string
	items types.Dict
}

func (o *opaque) Call(...any) (any, error)  { return &opaque{class: o.class}, nil }
func (o *opaque) PyNew(...any) (any, error) { return &opaque{class: o.class}, nil }
func (o *opaque) PySetState(any) error      { return nil }
func (o *opaque) Set(k, v any)              { o.items.Set(k, v) }
func (o *opaque) Append(any)                {}

// materialize copies the strided view into a dense row-major tensor,
// checking every index against the storage first.
func (t *torchTensor) materialize() (*vit.Tensor, error) {
	if t.st == nil {
		return nil, errors.New("tensor without storage")
	}
	n := len(t.st.data)
	numel := 1
	for _, d := range t.size {
		if d < 0 {
			return nil, fmt.Errorf("negative dimension in shape %v", t.size)
		}
		if d > 0 && numel > n/d {
			return nil, fmt.Errorf("shape %v holds more values than its storage (%d)", t.size, n)
		}
		numel *= d
	}
	out := &vit.Tensor{Shape: append([]int{}, t.size...)}
	if numel == 0 {
		out.Data = []float32{}
		return out, nil
	}
	if t.offset < 0 || t.offset >= n {
		return nil, fmt.Errorf("storage offset %d outside its storage of %d values", t.offset, n)
	}
	last, contiguous, want := t.offset, true, 1
	for i := len(t.size) - 1; i >= 0; i-- {
		d, s := t.size[i], t.stride[i]
		if s < 0 || (d > 1 && s > n) {
			return nil, fmt.Errorf("stride %v out of range for a storage of %d values", t.stride, n)
		}
		last += (d - 1) * s
		if d > 1 && s != want {
			contiguous = false
		}
		want *= d
	}
	if last >= n {
		return nil, fmt.Errorf("view (offset %d, shape %v, stride %v) reaches past its storage of %d values", t.offset, t.size, t.stride, n)
	}
	if contiguous {
		out.Data = t.st.data[t.offset : t.offset+numel : t.offset+numel]
		if numel != n { // a view of a shared storage gets its own copy
			out.Data = append([]float32(nil), out.Data...)
		}
		return out, nil
	}
	out.Data = make([]float32, 0, numel)
	idx := make([]int, len(t.size))
	for {
		at := t.offset
		for i, k := range idx {
			at += k * t.stride[i]
		}
		out.Data = append(out.Data, t.st.data[at])
		i := len(idx) - 1
		for ; i >= 0; i-- {
			if idx[i]++; idx[i] < t.size[i] {
				break
			}
			idx[i] = 0
		}
		if i < 0 {
			return out, nil
		}
	}
}

// wrapperKeys are the keys under which training scripts nest the
// state_dict, most specific first.
var wrapperKeys = []string{"model", "state_dict", "module", "model_state"}

// findStateDict accepts a bare state_dict or one nested under wrapperKeys.
func findStateDict(v any, depth int) (map[string]*torchTensor, error) {
	kvs, ok := dictItems(v)
	if !ok {
		return nil, fmt.Errorf("the checkpoint holds %s, not a state_dict (a pickled nn.Module? save model.state_dict())", describeType(v))
	}
	tensors := map[string]*torchTensor{}
	var keys []string
	for _, kv := range kvs {
		// Never fmt a pickled value: a forged pickle can make one that
		// contains itself, and its String method would recurse forever.
		k, isString := kv.Key.(string)
		if isString {
			keys = append(keys, strconv.Quote(k))
		} else {
			keys = append(keys, fmt.Sprintf("(%T)", kv.Key))
		}
		if t, ok := kv.Value.(*torchTensor); ok && isString {
			tensors[k] = t
		}
	}
	if len(tensors) > 0 {
		return tensors, nil
	}
	if depth < 3 {
		for _, w := range wrapperKeys {
			for _, kv := range kvs {
				if k, _ := kv.Key.(string); k == w {
					if _, ok := dictItems(kv.Value); ok {
						return findStateDict(kv.Value, depth+1)
					}
				}
			}
		}
	}
	sort.Strings(keys)
	if len(keys) > 20 {
		keys = append(keys[:20], "...")
	}
	return nil, fmt.Errorf("no tensors found (keys: %s); a state_dict is expected, bare or under one of %v", strings.Join(keys, ", "), wrapperKeys)
}

func dictItems(v any) ([]types.DictEntry, bool) {
	switch d := v.(type) {
	case *types.Dict:
		return *d, true
	case *types.OrderedDict:
		var out []types.DictEntry
		for e := d.List.Front(); e != nil; e = e.Next() {
			oe := e.Value.(*types.OrderedDictEntry)
			out = append(out, types.DictEntry{Key: oe.Key, Value: oe.Value})
		}
		return out, true
	case *opaque:
		return d.items, len(d.items) > 0
	}
	return nil, false
}

// describe names a pickled value for a message without fmt's %v: a forged
// pickle can build values that contain themselves, and their String methods
// would recurse until the stack overflows (a crash no recover catches).
func describe(v any) string {
	switch o := v.(type) {
	case string:
		if len(o) > 60 {
			o = o[:60] + "..."
		}
		return strconv.Quote(o)
	case int, bool, float64:
		return fmt.Sprint(o)
	case nil:
		return "None"
	case *types.Tuple:
		parts := make([]string, o.Len())
		for i := range parts {
			switch e := o.Get(i).(type) {
			case string, int, bool, float64, nil:
				parts[i] = describe(e)
			default:
				parts[i] = describeType(e)
			}
		}
		return "(" + strings.Join(parts, ", ") + ")"
	}
	return describeType(v)
}

func describeType(v any) string {
	switch o := v.(type) {
	case *opaque:
		return "a " + o.class + " object"
	case *torchTensor:
		return "a single tensor"
	case *storageClass:
		return "a " + o.dtype + " storage class"
	}
	return fmt.Sprintf("a value of type %T", v)
}
