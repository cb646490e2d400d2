package sockstat

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"unsafe"

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
	Scanned    int `json:"scanned"`    // fd directories read
	Unreadable int `json:"unreadable"` // fd directories that could not be read (permission)
	Attributed int `json:"attributed"` // socket inodes matched to a process
	// StoppedEarly is set when the scan stopped because every wanted
	// socket had an owner; the processes not scanned might share one.
	StoppedEarly bool `json:"stopped_early,omitempty"`
}

// Owners maps socket inodes to the processes holding them.
type Owners map[uint64][]Process

// ScanOptions tunes ScanProcessesFor.
type ScanOptions struct {
	// NetNS is the network namespace the sockets were read from, as the
	// /proc/PID/ns/net link reads ("net:[4026531840]"); its processes are
	// scanned first, since they are the ones that almost always hold its
	// sockets. "" scans in PID order.
	NetNS string
	// All scans every process even once every socket has an owner, so a
	// socket shared by several processes (a listener inherited by
	// workers) lists them all.
	All bool
	// PIDs, when set, scans only these processes (a shipper and its
	// workers) instead of every one under procRoot.
	PIDs []int
}

// ScanProcesses walks procRoot/[0-9]*/fd and maps each socket inode in want
// to every process holding it. Processes that exit during the scan are
// ignored; fd directories that cannot be read are counted as unreadable.
func ScanProcesses(procRoot string, want map[uint64]struct{}) (Owners, ProcScan, error) {
	return ScanProcessesFor(procRoot, want, ScanOptions{All: true})
}

// ScanProcessesFor is ScanProcesses that, unless o.All, stops as soon as
// every inode in want has an owner: reading every fd of every process is
// what makes attribution cost more than reading the socket table (ss -p
// pays the same), and the sockets asked for are usually found long before
// the last process. Processes in o.NetNS go first.
func ScanProcessesFor(procRoot string, want map[uint64]struct{}, o ScanOptions) (Owners, ProcScan, error) {
	var st ProcScan
	owners := Owners{}
	if len(want) == 0 {
		return owners, st, nil
	}
	if len(o.PIDs) > 0 {
		return scanPIDs(procRoot, want, o.PIDs)
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
	pids := make([]int, 0, len(names))
	for _, name := range names {
		if pid, err := strconv.Atoi(name); err == nil && pid > 0 {
			pids = append(pids, pid)
		}
	}
	st.Processes = len(pids)
	if o.NetNS != "" {
		pids = sameNetnsFirst(procRoot, pids, o.NetNS)
	}
	sc := scanner{procRoot: procRoot, want: want, owners: owners, found: map[int]struct{}{},
		link: make([]byte, 64), missing: len(want)}
	for i, pid := range pids {
		if !o.All && sc.missing == 0 {
			st.StoppedEarly = i < len(pids)
			break
		}
		sc.scan(pid, &st)
	}
	sc.finish(&st)
	return owners, st, nil
}

// scanPIDs is ScanProcessesFor over a given set of processes.
func scanPIDs(procRoot string, want map[uint64]struct{}, pids []int) (Owners, ProcScan, error) {
	st := ProcScan{Processes: len(pids)}
	owners := Owners{}
	sc := scanner{procRoot: procRoot, want: want, owners: owners, found: map[int]struct{}{},
		link: make([]byte, 64), missing: len(want)}
	for _, pid := range pids {
		sc.scan(pid, &st)
	}
	sc.finish(&st)
	return owners, st, nil
}

// finish names the owners and sorts each socket's list by PID.
func (sc *scanner) finish(st *ProcScan) {
	owners, procRoot := sc.owners, sc.procRoot
	comms := make(map[int]string, len(sc.found))
	for pid := range sc.found {
		comms[pid] = readComm(procRoot, pid)
	}
	for _, ps := range owners {
		for i := range ps {
			ps[i].Comm = comms[ps[i].PID]
		}
		// Nearly every socket has one owner: no sort (sort.Slice
		// allocated for each of 20,000 sockets).
		if len(ps) > 1 {
			slices.SortFunc(ps, func(a, b Process) int { return cmp.Compare(a.PID, b.PID) })
		}
	}
	st.Attributed = len(owners)
}

// sameNetnsFirst orders pids so those in network namespace netns come
// first, each group in PID order. A process whose namespace cannot be read
// (another user's, unprivileged) goes with the rest.
func sameNetnsFirst(procRoot string, pids []int, netns string) []int {
	out := make([]int, 0, len(pids))
	var rest []int
	link := make([]byte, 64)
	for _, pid := range pids {
		n, err := unix.Readlink(filepath.Join(procRoot, strconv.Itoa(pid), "ns", "net"), link)
		if err == nil && string(link[:n]) == netns {
			out = append(out, pid)
		} else {
			rest = append(rest, pid)
		}
	}
	return append(out, rest...)
}

type scanner struct {
	procRoot string
	want     map[uint64]struct{}
	owners   Owners
	found    map[int]struct{} // pids holding a wanted socket
	link     []byte           // one buffer for every readlink
	dents    []byte           // one getdents buffer for every fd directory
	missing  int              // wanted inodes without an owner yet
	slab     []Process        // backs the first owner of each socket
}

var socketPrefix = []byte("socket:[")

// scan maps the wanted sockets among pid's file descriptors.
func (sc *scanner) scan(pid int, st *ProcScan) {
	fdDir := filepath.Join(sc.procRoot, strconv.Itoa(pid), "fd")
	dfd, err := unix.Open(fdDir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) {
			st.Unreadable++
		}
		return // ENOENT: the process exited
	}
	defer unix.Close(dfd)
	// The fd directory is read with getdents straight into one buffer and
	// each entry's name, which getdents leaves NUL-terminated there, goes
	// to readlinkat as it is: no string per fd, which matters for a
	// process holding tens of thousands of sockets.
	if sc.dents == nil {
		sc.dents = make([]byte, 32*1024)
	}
	for first := true; ; first = false {
		n, err := unix.ReadDirent(dfd, sc.dents)
		if err != nil {
			if first && (errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM)) {
				st.Unreadable++
			}
			return
		}
		if first {
			st.Scanned++
		}
		if n <= 0 {
			return
		}
		sc.scanDirents(pid, dfd, sc.dents[:n])
	}
}

// scanDirents handles one getdents64 buffer of pid's fd directory.
func (sc *scanner) scanDirents(pid, dfd int, b []byte) {
	// "socket:[" + 20 digits + "]" fits the buffer; longer targets (file
	// paths) are not sockets anyway.
	link, prefix := sc.link, socketPrefix
	// struct linux_dirent64: ino (8), off (8), reclen (2), type (1), name.
	const nameOff = 19
	for len(b) >= nameOff {
		reclen := int(binary.NativeEndian.Uint16(b[16:]))
		if reclen <= nameOff || reclen > len(b) {
			return
		}
		name := b[nameOff:reclen]
		b = b[reclen:]
		if name[0] == '.' || bytes.IndexByte(name, 0) < 0 {
			continue // "." and ".."
		}
		n, err := readlinkat(dfd, name, link)
		if err != nil || n <= len(prefix)+1 || !bytes.HasPrefix(link[:n], prefix) || link[n-1] != ']' {
			continue
		}
		ino, ok := parseDec(link[len(prefix) : n-1])
		if !ok {
			continue
		}
		if _, ok := sc.want[ino]; !ok {
			continue
		}
		ps := sc.owners[ino]
		if len(ps) == 0 {
			sc.missing--
		}
		switch {
		case len(ps) == 0:
			// The first owner of each socket comes from one slab, not
			// an allocation per socket; a second one copies out of it.
			if len(sc.slab) == cap(sc.slab) {
				sc.slab = make([]Process, 0, min(max(sc.missing+1, 16), 4096))
			}
			sc.slab = append(sc.slab, Process{PID: pid})
			n := len(sc.slab)
			sc.owners[ino] = sc.slab[n-1 : n : n]
			sc.found[pid] = struct{}{}
		case ps[len(ps)-1].PID != pid:
			sc.owners[ino] = append(ps, Process{PID: pid})
			sc.found[pid] = struct{}{}
		}
	}
}

// readlinkat is unix.Readlinkat for a name that is already NUL-terminated
// (a getdents entry), which saves the copy unix.Readlinkat makes of it.
func readlinkat(dfd int, name, buf []byte) (int, error) {
	r, _, errno := unix.Syscall6(unix.SYS_READLINKAT, uintptr(dfd), uintptr(unsafe.Pointer(&name[0])),
		uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)), 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(r), nil
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
