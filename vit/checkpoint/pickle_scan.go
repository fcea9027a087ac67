package checkpoint

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// pickleArg says what follows an opcode in the stream (as Python's
// pickletools documents it).
type pickleArg int8

const (
	argNone   pickleArg = iota
	argFixed1           // one byte
	argFixed2
	argFixed4
	argFixed8
	argLen1 // 1-byte length, then that many bytes
	argLen4 // 4-byte little-endian length, then the bytes
	argLen8 // 8-byte little-endian length, then the bytes
	argLine // text up to '\n'
	argLines2
	argFrame // 8-byte frame size; the frame holds further opcodes
)

// pickleOps covers exactly the opcodes gopickle dispatches, protocols 0-5.
var pickleOps = func() (t [256]pickleArg) {
	for i := range t {
		t[i] = -1
	}
	for _, op := range []byte("(.012NRabd}elou)t\x81\x85\x86\x87\x88\x89\x8f\x90\x91\x92\x93\x94\x97\x98Qs]") {
		t[op] = argNone
	}
	for _, op := range []byte("\x80hqK\x82") {
		t[op] = argFixed1
	}
	t['M'], t['\x83'] = argFixed2, argFixed2
	for _, op := range []byte("Jjr\x84") {
		t[op] = argFixed4
	}
	t['G'] = argFixed8
	for _, op := range []byte("\x8aUC\x8c") {
		t[op] = argLen1
	}
	for _, op := range []byte("\x8bTBX") {
		t[op] = argLen4
	}
	for _, op := range []byte("\x8d\x8e\x96") {
		t[op] = argLen8
	}
	for _, op := range []byte("ILSVFPgp") {
		t[op] = argLine
	}
	t['c'], t['i'] = argLines2, argLines2
	t['\x95'] = argFrame
	return t
}()

// popsToMark marks the opcodes that consume everything down to the topmost
// MARK: POP_MARK, DICT, APPENDS, INST, LIST, OBJ, TUPLE, SETITEMS, ADDITEMS
// and FROZENSET.
var popsToMark = func() (t [256]bool) {
	for _, op := range []byte("1deilotu\x90\x91") {
		t[op] = true
	}
	return t
}()

// What a pickle may cost before it is run. gopickle keeps every value,
// memo entry and MARK in memory (a MARK alone costs about 330 bytes) and
// converts decimal LONGs in quadratic time, so a 19 KB archive could hold a
// pickle that needs gigabytes or hours. These bounds are far above what a
// state_dict needs and refuse such a file in a single pass over its bytes,
// before anything is built.
const (
	// Python's pickler recurses once per nesting level and stops at its
	// default recursion limit of 1000, so a real pickle never nests MARKs
	// deeper.
	maxPickleMarkDepth = 1000
	// Python itself refuses to convert decimal integers of more than 4300
	// digits (sys.int_info.default_max_str_digits) for the same quadratic
	// cost; torch.save writes none at all. Binary LONG4 integers are held
	// to the same size (4300 digits fit in 1786 bytes).
	maxPickleIntDigits = 4300
	maxPickleIntBytes  = 1786
	// Every opcode pushes a value, stores a memo entry, opens a MARK or
	// grows a container: torch.save spends about 40 of them per tensor.
	// The budget covers 6000 tensors in any file, more in larger files.
	minPickleOps      = 1 << 18
	pickleOpsPerBytes = 256 // one more opcode allowed per this many file bytes
)

// pickleBudget is the number of opcodes a pickle in a file of size bytes
// may run.
func pickleBudget(size int) int { return minPickleOps + size/pickleOpsPerBytes }

// errPickleTooLong reports a pickle that runs past the limit its reader was
// given.
var errPickleTooLong = errors.New("pickle longer than its limit")

// scanPickle walks one pickle's opcodes without running them and returns the
// offset just past its STOP. gopickle allocates whatever length a stream
// announces before reading it, so a forged length could exhaust memory (a
// fatal error no recover catches): here every length must fit in the bytes
// that remain. The walk also holds the pickle to its budget of opcodes (see
// pickleBudget), MARK depth and integer size.
func scanPickle(p []byte, budget int) (int, error) {
	return scanPickleFrom(bufio.NewReader(bytes.NewReader(p)), budget)
}

// scanPickleFrom is scanPickle over a stream, so that a compressed archive
// record can be judged before it is held in memory. It reads nothing past
// the STOP opcode that it would not have to (at most the reader's buffer).
func scanPickleFrom(r *bufio.Reader, budget int) (int, error) {
	i, at := 0, 0
	var op byte
	// skip consumes n argument bytes, failing if the stream ends first.
	skip := func(n uint64) error {
		for n > 0 {
			step := int(min(n, 1<<30))
			k, err := r.Discard(step)
			i += k
			n -= uint64(k)
			if err != nil {
				if err == errPickleTooLong {
					return err
				}
				return fmt.Errorf("pickle truncated or corrupt: opcode 0x%02x at byte %d wants %d more bytes than remain", op, at, n)
			}
		}
		return nil
	}
	var head [8]byte
	readHead := func(n int) error {
		k, err := io.ReadFull(r, head[:n])
		i += k
		if err != nil {
			if err == errPickleTooLong {
				return err
			}
			return fmt.Errorf("pickle truncated or corrupt: opcode 0x%02x at byte %d wants %d bytes, %d remain", op, at, n, k)
		}
		return nil
	}
	ops, marks, frameEnd := 0, 0, 0
	for {
		var err error
		at = i
		if op, err = r.ReadByte(); err != nil {
			if err == errPickleTooLong {
				return 0, err
			}
			return 0, fmt.Errorf("pickle truncated: no STOP opcode in %d bytes", i)
		}
		i++
		kind := pickleOps[op]
		if kind == -1 {
			return 0, fmt.Errorf("pickle corrupt: unknown opcode 0x%02x at byte %d", op, at)
		}
		if ops++; ops > budget {
			return 0, fmt.Errorf("pickle refused: more than %d opcodes by byte %d, far more than a state_dict of this size needs (a forged or corrupt file?)", budget, at)
		}
		switch {
		case op == '(':
			if marks++; marks > maxPickleMarkDepth {
				return 0, fmt.Errorf("pickle refused: MARKs nested more than %d deep at byte %d, which Python's pickler never writes (a forged file?)", maxPickleMarkDepth, at)
			}
		case popsToMark[op] && marks > 0:
			marks--
		}
		var n uint64
		switch kind {
		case argNone:
			if op == '.' {
				if frameEnd > i { // gopickle would allocate the whole frame
					return 0, fmt.Errorf("pickle corrupt: a frame runs %d bytes past the STOP opcode at byte %d", frameEnd-i, at)
				}
				return i, nil
			}
			continue
		case argFixed1:
			n = 1
		case argFixed2:
			n = 2
		case argFixed4:
			n = 4
		case argFixed8:
			n = 8
		case argLen1, argLen4, argLen8, argFrame:
			w := map[pickleArg]int{argLen1: 1, argLen4: 4, argLen8: 8, argFrame: 8}[kind]
			if err := readHead(w); err != nil {
				return 0, err
			}
			switch w {
			case 1:
				n = uint64(head[0])
			case 4:
				v := binary.LittleEndian.Uint32(head[:])
				if int32(v) < 0 { // BINSTRING and LONG4 are signed
					return 0, fmt.Errorf("pickle corrupt: negative length at byte %d", at)
				}
				n = uint64(v)
			case 8:
				n = binary.LittleEndian.Uint64(head[:])
			}
			if op == '\x8b' && n > maxPickleIntBytes { // LONG4
				return 0, fmt.Errorf("pickle refused: a %d-byte integer at byte %d (more than %d digits; a forged file?)", n, at, maxPickleIntDigits)
			}
			if kind == argFrame {
				if n > uint64(maxPickleBytes) {
					return 0, fmt.Errorf("pickle corrupt: a frame of %d bytes at byte %d", n, at)
				}
				frameEnd = i + int(n)
				continue // the frame's contents are opcodes: keep walking
			}
		case argLine, argLines2:
			lines := 1
			if kind == argLines2 {
				lines = 2
			}
			for ; lines > 0; lines-- {
				length := 0
				for {
					chunk, err := r.ReadSlice('\n')
					i += len(chunk)
					length += len(chunk)
					if op == 'L' && length > maxPickleIntDigits+2 { // digits, an 'L' suffix, '\n'
						return 0, fmt.Errorf("pickle refused: an integer of more than %d digits at byte %d (a forged file?)", maxPickleIntDigits, at)
					}
					if err == nil {
						break
					}
					if err == errPickleTooLong {
						return 0, err
					}
					if err != bufio.ErrBufferFull {
						return 0, fmt.Errorf("pickle truncated: unterminated text argument at byte %d", at)
					}
				}
			}
			continue
		}
		if err := skip(n); err != nil {
			return 0, err
		}
	}
}

// limitedReader is io.LimitReader that says errPickleTooLong instead of
// io.EOF when the limit, not the stream, ends.
type limitedReader struct {
	r io.Reader
	n int64
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, errPickleTooLong
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	k, err := l.r.Read(p)
	l.n -= int64(k)
	return k, err
}
