package sockstat

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"

	"golang.org/x/sys/unix"
)

// Process is a process holding a socket.
type Process struct {
	PID  int    `json:"pid"`
	Comm string `json:"comm"`
}

// ProcScan says how the /proc/*/fd scan went. Like ss without root,
// logdoctor cannot see other users' file descriptors unprivileged; it says
// how many processes it could not look into instead of pretending.
type ProcScan struct {
	Processes  int `json:"processes"`  // PID directories found
	Unreadable int `json:"unreadable"` // fd directories that could not be read (permission)
	Attributed int `json:"attributed"` // socket inodes matched to a process
}

// Owners maps socket inodes to the processes holding them.
type Owners map[uint64][]Process

// ScanProcesses walks procRoot/[0-9]*/fd and maps each socket inode in want
// to the processes holding it. Processes that exit during the scan are
// ignored; fd directories that cannot be read are counted as unreadable.
func ScanProcesses(procRoot string, want map[uint64]struct{}) (Owners, ProcScan, error) {
	var st ProcScan
	owners := Owners{}
	if len(want) == 0 {
		return owners, st, nil
	}
	d, err := os.Open(procRoot)
	if err != nil {
		return nil, st, fmt.Errorf("scan processes: %w", err)
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return nil, st, fmt.Errorf("scan processes: %w", err)
	}
	// One buffer for every readlink: "socket:[" + 20 digits + "]" fits, and
	// longer targets (file paths) are not sockets anyway.
	link := make([]byte, 64)
	prefix := []byte("socket:[")
	pids := map[int]struct{}{}
	for _, name := range names {
		pid, err := strconv.Atoi(name)
		if err != nil || pid <= 0 {
			continue
		}
		st.Processes++
		fdDir := filepath.Join(procRoot, name, "fd")
		dfd, err := unix.Open(fdDir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			if errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) {
				st.Unreadable++
			}
			continue // ENOENT: the process exited
		}
		fds, err := readDirNames(dfd)
		if err != nil {
			unix.Close(dfd)
			if errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) {
				st.Unreadable++
			}
			continue
		}
		for _, fd := range fds {
			n, err := unix.Readlinkat(dfd, fd, link)
			if err != nil || n <= len(prefix)+1 || !bytes.HasPrefix(link[:n], prefix) || link[n-1] != ']' {
				continue
			}
			ino, ok := parseDec(link[len(prefix) : n-1])
			if !ok {
				continue
			}
			if _, ok := want[ino]; !ok {
				continue
			}
			ps := owners[ino]
			if len(ps) == 0 || ps[len(ps)-1].PID != pid {
				owners[ino] = append(ps, Process{PID: pid})
				pids[pid] = struct{}{}
			}
		}
		unix.Close(dfd)
	}
	comms := make(map[int]string, len(pids))
	for pid := range pids {
		comms[pid] = readComm(procRoot, pid)
	}
	for ino, ps := range owners {
		for i := range ps {
			ps[i].Comm = comms[ps[i].PID]
		}
		sort.Slice(ps, func(i, j int) bool { return ps[i].PID < ps[j].PID })
		owners[ino] = ps
	}
	st.Attributed = len(owners)
	return owners, st, nil
}

// readDirNames lists a directory opened as dfd; it reads with getdents
// straight into one buffer, which matters for a process holding tens of
// thousands of sockets.
func readDirNames(dfd int) ([]string, error) {
	buf := make([]byte, 32*1024)
	var names []string
	for {
		n, err := unix.ReadDirent(dfd, buf)
		if err != nil {
			return nil, err
		}
		if n <= 0 {
			return names, nil
		}
		_, _, names = unix.ParseDirent(buf[:n], -1, names)
	}
}

func readComm(procRoot string, pid int) string {
	b, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "comm"))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "(exited)"
		}
		return "?"
	}
	b = bytes.TrimRight(b, "\n")
	if len(b) > 64 {
		b = b[:64]
	}
	return string(b)
}
