package sockstat

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"

	"github.com/logdoctor/logdoctor/internal/clip"
)

// maxErrField bounds a field quoted in an error, so a garbage line cannot
// make a report huge.
const maxErrField = 40

// ErrMalformed marks a /proc/net/tcp line that could not be parsed.
var ErrMalformed = errors.New("malformed socket line")

// maxLineLen caps a line of /proc/net/tcp{,6}; real lines are under 200
// bytes, so anything longer is garbage, not a socket.
const maxLineLen = 4096

// maxMalformedKept caps how many malformed lines are kept with their text;
// the rest are only counted.
const maxMalformedKept = 20

// MalformedLine is a line that could not be parsed: where, and why.
type MalformedLine struct {
	Line  int    `json:"line"`
	Error string `json:"error"`
}

// ParseLine parses one line of /proc/net/tcp or tcp6 (not the header).
//
// It exists next to procfs's parser because procfs rejects a whole file on
// the first bad line and does not export its line parser, while logdoctor
// must report the line number and keep counting the rest. It also does not
// allocate, which keeps a 30,000-socket table cheap to read.
func ParseLine(line []byte) (Socket, error) {
	var s Socket
	var f [10][]byte
	n := 0
	for i := 0; i < len(line) && n < len(f); {
		for i < len(line) && (line[i] == ' ' || line[i] == '\t') {
			i++
		}
		j := i
		for j < len(line) && line[j] != ' ' && line[j] != '\t' {
			j++
		}
		if j > i {
			f[n] = line[i:j]
			n++
		}
		i = j
	}
	if n < len(f) {
		return s, fmt.Errorf("%w: %d fields, want at least 10", ErrMalformed, n)
	}
	if len(f[0]) < 2 || f[0][len(f[0])-1] != ':' {
		return s, fmt.Errorf("%w: slot %q", ErrMalformed, clip.Bytes(f[0], maxErrField))
	}
	var err error
	if s.Local, err = parseHexAddrPort(f[1]); err != nil {
		return s, fmt.Errorf("%w: local address: %w", ErrMalformed, err)
	}
	if s.Remote, err = parseHexAddrPort(f[2]); err != nil {
		return s, fmt.Errorf("%w: remote address: %w", ErrMalformed, err)
	}
	if s.Local.Addr().BitLen() != s.Remote.Addr().BitLen() {
		return s, fmt.Errorf("%w: local and remote address families differ", ErrMalformed)
	}
	st, ok := parseHex(f[3], 2)
	if !ok || !State(st).Valid() {
		return s, fmt.Errorf("%w: state %q", ErrMalformed, clip.Bytes(f[3], maxErrField))
	}
	s.State = State(st)
	tx, rx, ok := splitColon(f[4])
	if !ok {
		return s, fmt.Errorf("%w: queues %q", ErrMalformed, clip.Bytes(f[4], maxErrField))
	}
	if s.SendQ, ok = parseHex(tx, 16); !ok {
		return s, fmt.Errorf("%w: tx_queue %q", ErrMalformed, clip.Bytes(tx, maxErrField))
	}
	if s.RecvQ, ok = parseHex(rx, 16); !ok {
		return s, fmt.Errorf("%w: rx_queue %q", ErrMalformed, clip.Bytes(rx, maxErrField))
	}
	uid, ok := parseDec(f[7])
	if !ok || uid > 1<<32-1 {
		return s, fmt.Errorf("%w: uid %q", ErrMalformed, clip.Bytes(f[7], maxErrField))
	}
	s.UID = uint32(uid)
	if s.Inode, ok = parseDec(f[9]); !ok {
		return s, fmt.Errorf("%w: inode %q", ErrMalformed, clip.Bytes(f[9], maxErrField))
	}
	// IPv4-mapped addresses (dual-stack sockets in tcp6) are shown as the
	// IPv4 addresses they are, so a peer is one peer whichever file it
	// appears in.
	s.Local = netip.AddrPortFrom(s.Local.Addr().Unmap(), s.Local.Port())
	s.Remote = netip.AddrPortFrom(s.Remote.Addr().Unmap(), s.Remote.Port())
	return s, nil
}

// Table is one parsed socket file: its sockets and its malformed lines.
type Table struct {
	Sockets        []Socket
	Malformed      []MalformedLine // the first maxMalformedKept
	MalformedCount int
}

// maxTableBytes caps how much of one socket file is read: about 3 million
// sockets, far past any real host, and bounded memory on a bad input.
const maxTableBytes = 512 << 20

// ParseTable parses a whole /proc/net/tcp{,6} file from r, header included.
// A malformed line is recorded with its 1-based line number and the rest
// are still counted; only a read error fails the table.
func ParseTable(r io.Reader) (Table, error) {
	buf, err := readAll(r, nil)
	if err != nil {
		return Table{}, fmt.Errorf("read socket table: %w", err)
	}
	return parseBytes(buf), nil
}

// readAll reads r to the end into buf (reused when large enough) in big
// reads: each read of a /proc seq_file re-walks the kernel's socket hash
// from where the last one stopped, so fewer, larger reads cost less.
func readAll(r io.Reader, buf []byte) ([]byte, error) {
	if cap(buf) < 256<<10 {
		buf = make([]byte, 0, 256<<10)
	}
	buf = buf[:0]
	for {
		if len(buf) == cap(buf) {
			if len(buf) >= maxTableBytes {
				return nil, fmt.Errorf("socket table larger than %d bytes", maxTableBytes)
			}
			// Double: a 30,000-socket table is ~3 MiB, so this takes four
			// steps instead of append's many small ones.
			nb := make([]byte, len(buf), min(2*cap(buf), maxTableBytes))
			copy(nb, buf)
			buf = nb
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if errors.Is(err, io.EOF) {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// parseBytes parses a whole file held in memory without allocating per
// line: the sockets slice is sized from the byte count up front.
func parseBytes(data []byte) Table {
	t := Table{Sockets: make([]Socket, 0, len(data)/140+1)}
	lineNo := 0
	for len(data) > 0 {
		lineNo++
		var line []byte
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			line, data = data, nil
		}
		if lineNo == 1 && bytes.Contains(line, []byte("local_address")) {
			continue
		}
		if len(line) > maxLineLen {
			t.addMalformed(lineNo, fmt.Errorf("%w: line longer than %d bytes", ErrMalformed, maxLineLen))
			continue
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		s, err := ParseLine(line)
		if err != nil {
			t.addMalformed(lineNo, err)
			continue
		}
		t.Sockets = append(t.Sockets, s)
	}
	return t
}

func (t *Table) addMalformed(line int, err error) {
	t.MalformedCount++
	if len(t.Malformed) < maxMalformedKept {
		t.Malformed = append(t.Malformed, MalformedLine{Line: line, Error: err.Error()})
	}
}

// parseHexAddrPort parses "0100007F:1F90" or the 32-hex-digit IPv6 form.
// The kernel prints each 32-bit word of the address in host byte order
// (little-endian here), the port in network order as a plain number.
func parseHexAddrPort(b []byte) (netip.AddrPort, error) {
	a, p, ok := splitColon(b)
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("%q: want ADDR:PORT", clip.Bytes(b, maxErrField))
	}
	port, ok := parseHex(p, 4)
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("port %q", clip.Bytes(p, maxErrField))
	}
	var raw [16]byte
	switch len(a) {
	case 8, 32:
	default:
		return netip.AddrPort{}, fmt.Errorf("address %q: want 8 or 32 hex digits", clip.Bytes(a, maxErrField))
	}
	for w := 0; w < len(a)/8; w++ {
		v, ok := parseHex(a[w*8:w*8+8], 8)
		if !ok {
			return netip.AddrPort{}, fmt.Errorf("address %q: not hex", clip.Bytes(a, maxErrField))
		}
		// Little-endian word: lowest byte first in memory.
		raw[w*4+0] = byte(v)
		raw[w*4+1] = byte(v >> 8)
		raw[w*4+2] = byte(v >> 16)
		raw[w*4+3] = byte(v >> 24)
	}
	var addr netip.Addr
	if len(a) == 8 {
		addr = netip.AddrFrom4([4]byte(raw[:4]))
	} else {
		addr = netip.AddrFrom16(raw)
	}
	return netip.AddrPortFrom(addr, uint16(port)), nil
}

func splitColon(b []byte) (before, after []byte, ok bool) {
	i := bytes.IndexByte(b, ':')
	if i < 0 || bytes.IndexByte(b[i+1:], ':') >= 0 {
		return nil, nil, false
	}
	return b[:i], b[i+1:], true
}

// parseHex parses 1..maxDigits hex digits.
func parseHex(b []byte, maxDigits int) (uint64, bool) {
	if len(b) == 0 || len(b) > maxDigits {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		var d byte
		switch {
		case c >= '0' && c <= '9':
			d = c - '0'
		case c >= 'a' && c <= 'f':
			d = c - 'a' + 10
		case c >= 'A' && c <= 'F':
			d = c - 'A' + 10
		default:
			return 0, false
		}
		v = v<<4 | uint64(d)
	}
	return v, true
}

// parseDec parses up to 20 decimal digits without overflow.
func parseDec(b []byte) (uint64, bool) {
	if len(b) == 0 || len(b) > 20 {
		return 0, false
	}
	var v uint64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if v > (1<<64-1-d)/10 {
			return 0, false
		}
		v = v*10 + d
	}
	return v, true
}
