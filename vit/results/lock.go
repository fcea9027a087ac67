package results

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// LockFile is the name of the lock inside a results folder. Its content (the
// holder's PID and host) is only for the refusal message; the lock itself is
// the operating system's, on the open file.
const LockFile = ".lock"

// folderLock is the exclusive hold a Run has on its folder.
type folderLock struct{ f *os.File }

// lockFolder takes dir's lock without waiting. The operating system drops it
// when the process ends, however it ends, so a killed run never leaves a
// stale lock behind: the file may stay, the lock does not.
func lockFolder(dir string) (*folderLock, error) {
	path := filepath.Join(dir, LockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	held, err := tryLock(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	if held {
		b, _ := os.ReadFile(path)
		f.Close()
		holder := strings.TrimSpace(string(b))
		if holder == "" {
			holder = "a process that has not yet written its name"
		}
		return nil, fmt.Errorf("results dir %s is in use by another vitlens run (%s): wait for it to end, or use another --out", dir, holder)
	}
	host, _ := os.Hostname()
	if err := f.Truncate(0); err == nil {
		fmt.Fprintf(f, "pid %d on host %s\n", os.Getpid(), host)
	}
	return &folderLock{f}, nil
}

// release drops the lock; the file stays, harmlessly.
func (l *folderLock) release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}
