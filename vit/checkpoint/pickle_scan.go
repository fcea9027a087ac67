package checkpoint

import (
	"bytes"
	"encoding/binary"
	"fmt"
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

// scanPickle walks one pickle's opcodes without running them and returns the
// offset just past its STOP. gopickle allocates whatever length a stream
// announces before reading it, so a forged length could exhaust memory (a
// fatal error no recover catches): here every length must fit in the bytes
// that remain.
func scanPickle(p []byte) (int, error) {
	i, at := 0, 0
	need := func(n uint64) error {
		if n > uint64(len(p)-i) {
			return fmt.Errorf("pickle truncated or corrupt: opcode 0x%02x at byte %d wants %d bytes, %d remain", p[at], at, n, len(p)-i)
		}
		return nil
	}
	for i < len(p) {
		op := p[i]
		at = i
		i++
		kind := pickleOps[op]
		var n uint64
		switch kind {
		case -1:
			return 0, fmt.Errorf("pickle corrupt: unknown opcode 0x%02x at byte %d", op, at)
		case argNone:
			if op == '.' {
				return i, nil
			}
			continue
		case argFixed1, argFixed2, argFixed4, argFixed8:
			n = map[pickleArg]uint64{argFixed1: 1, argFixed2: 2, argFixed4: 4, argFixed8: 8}[kind]
		case argLen1, argLen4, argLen8, argFrame:
			w := map[pickleArg]uint64{argLen1: 1, argLen4: 4, argLen8: 8, argFrame: 8}[kind]
			if err := need(w); err != nil {
				return 0, err
			}
			switch w {
			case 1:
				n = uint64(p[i])
			case 4:
				v := binary.LittleEndian.Uint32(p[i:])
				if int32(v) < 0 { // BINSTRING and LONG4 are signed
					return 0, fmt.Errorf("pickle corrupt: negative length at byte %d", at)
				}
				n = uint64(v)
			case 8:
				n = binary.LittleEndian.Uint64(p[i:])
			}
			i += int(w)
			if kind == argFrame {
				if err := need(n); err != nil {
					return 0, err
				}
				continue // the frame's contents are opcodes: keep walking
			}
		case argLine, argLines2:
			lines := 1
			if kind == argLines2 {
				lines = 2
			}
			for ; lines > 0; lines-- {
				nl := bytes.IndexByte(p[i:], '\n')
				if nl < 0 {
					return 0, fmt.Errorf("pickle truncated: unterminated text argument at byte %d", at)
				}
				i += nl + 1
			}
			continue
		}
		if err := need(n); err != nil {
			return 0, err
		}
		i += int(n)
	}
	return 0, fmt.Errorf("pickle truncated: no STOP opcode in %d bytes", len(p))
}
