package store

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/logdoctor/logdoctor/internal/clip"
)

// logMagic opens every data log; the number is the format's version.
const logMagic = "essim-log\t2\n"

// pendFlush is how many bytes of records wait in memory before they are
// written to the log file.
const pendFlush = 1 << 20

// openLog opens (or creates) the log at p and replays it.
func (s *Store) openLog(p string) error {
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("essim: data log: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("essim: data log: %w", err)
	}
	s.log, s.end = f, fi.Size()
	good, err := s.replay(f)
	if err != nil {
		f.Close()
		return fmt.Errorf("essim: replay %s: %w", p, err)
	}
	if err := f.Truncate(good); err != nil {
		f.Close()
		return fmt.Errorf("essim: data log: %w", err)
	}
	if _, err := f.Seek(good, io.SeekStart); err != nil {
		f.Close()
		return fmt.Errorf("essim: data log: %w", err)
	}
	s.end = good
	if good == 0 {
		s.pend = append(s.pend, logMagic...)
		s.end = int64(len(logMagic))
		if err := s.FlushLocked(); err != nil {
			f.Close()
			return err
		}
	}
	return nil
}

// replay applies the log and returns the offset after the last whole
// record.
func (s *Store) replay(r io.Reader) (int64, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	magic, err := br.ReadString('\n')
	if err != nil {
		if magic == "" || strings.HasPrefix(logMagic, magic) {
			return 0, nil // empty, or torn while writing the magic
		}
	}
	if magic != logMagic {
		return 0, fmt.Errorf("not an essim data log of this version (first line %q, want %q); move the directory away", clip.String(magic, 32), logMagic)
	}
	off := int64(len(logMagic))
	var body []byte
	// readBody reads n bytes plus the closing newline.
	readBody := func(n int64) ([]byte, bool) {
		if int64(cap(body)) < n+1 {
			body = make([]byte, n+1)
		}
		body = body[:n+1]
		if _, err := io.ReadFull(br, body); err != nil || body[n] != '\n' {
			return nil, false
		}
		return body[:n], true
	}
	for {
		hdr, err := br.ReadBytes('\n')
		if err != nil {
			return off, nil
		}
		n := int64(len(hdr))
		f := strings.Split(string(hdr[:len(hdr)-1]), "\t")
		bad := func(what string) (int64, error) {
			return off, fmt.Errorf("record at offset %d: %s in %q", off, what, clip.Bytes(hdr, 64))
		}
		switch {
		case f[0] == "I" && len(f) == 5:
			v, err1 := strconv.ParseInt(f[2], 10, 64)
			idn, err2 := strconv.Atoi(f[3])
			srcn, err3 := strconv.ParseInt(f[4], 10, 64)
			if err1 != nil || err2 != nil || err3 != nil || idn < 0 || idn > 512 || srcn < 0 || srcn > MaxSourceLen {
				return bad("bad number")
			}
			b, ok := readBody(int64(idn) + srcn)
			if !ok {
				return off, nil
			}
			ix := s.ensureIndexLocked(f[1])
			if _, err := s.putLocked(ix, string(b[:idn]), off+n, b[idn:], v); err != nil {
				return off, err
			}
			n += int64(len(b)) + 1
		case f[0] == "D" && len(f) == 3:
			idn, err := strconv.Atoi(f[2])
			if err != nil || idn < 0 || idn > 512 {
				return bad("bad id length")
			}
			b, ok := readBody(int64(idn))
			if !ok {
				return off, nil
			}
			if ix := s.indices[f[1]]; ix != nil {
				if _, err := s.deleteLocked(ix, string(b)); err != nil {
					return off, err
				}
			}
			n += int64(len(b)) + 1
		case f[0] == "C" && len(f) == 2:
			s.ensureIndexLocked(f[1])
		case f[0] == "X" && len(f) == 2:
			delete(s.indices, f[1])
		default:
			return bad("unknown header")
		}
		off += n
	}
}

// FlushLocked writes pending log records; callers hold the write lock. A
// failed write keeps what was not written, to be tried again, and is the
// error of the request that flushes.
func (s *Store) FlushLocked() error {
	if s.log == nil || len(s.pend) == 0 {
		return nil
	}
	n, err := s.log.Write(s.pend)
	s.pend = s.pend[:copy(s.pend, s.pend[n:])]
	if err != nil {
		return fmt.Errorf("essim: data log: %w", err)
	}
	return nil
}

// maybeFlushLocked writes pending records once there are enough of them;
// an error stays for the flush that ends the request to report.
func (s *Store) maybeFlushLocked() {
	if len(s.pend) >= pendFlush {
		_ = s.FlushLocked()
	}
}

// logRecord appends a header of tab-separated fields, then body and a
// newline when body is not nil.
func (s *Store) logRecord(body []string, fields ...string) {
	if !s.disk || s.log == nil {
		return
	}
	start := len(s.pend)
	for i, f := range fields {
		if i > 0 {
			s.pend = append(s.pend, '\t')
		}
		s.pend = append(s.pend, f...)
	}
	s.pend = append(s.pend, '\n')
	if body != nil {
		for _, b := range body {
			s.pend = append(s.pend, b...)
		}
		s.pend = append(s.pend, '\n')
	}
	s.end += int64(len(s.pend) - start)
	s.maybeFlushLocked()
}
