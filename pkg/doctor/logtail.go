package doctor

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/logdoctor/logdoctor/pkg/report"
)

// The shipper's own log is where it says why an output fails: doctor
// reads its end (the file named on the command line, or stdout/stderr
// when they go to a file) before and after the interval.

// logTailBytes is how much of the log's end is read for history.
const logTailBytes = 256 << 10

// shipperLog is the log file and what was read of it.
type shipperLog struct {
	Path  string `json:"path"`
	From  string `json:"from"`
	start int64
	read  func(off, limit int64) ([]byte, int64, error)
	// history is the end of the log at the start; fresh what was written
	// during the interval.
	history, fresh []string
}

// openLog finds the shipper's log: the file its command line names,
// read through its root, else what its stdout or stderr point at when
// that is a regular file.
func openLog(procRoot string, p Process, files TargetFiles) *shipperLog {
	if name := logFile(p); name != "" {
		if files.Exists(name) {
			return &shipperLog{Path: name, From: "its command line", read: func(off, limit int64) ([]byte, int64, error) {
				fh, err := files.open(name)
				if err != nil {
					return nil, 0, err
				}
				defer fh.Close()
				return readFrom(fh, off, limit)
			}}
		}
	}
	for _, fd := range []string{"1", "2"} {
		path := filepath.Join(procRoot, strconv.Itoa(p.PID), "fd", fd)
		st, err := os.Stat(path)
		if err != nil || !st.Mode().IsRegular() {
			continue
		}
		target, _ := os.Readlink(path)
		return &shipperLog{Path: target, From: "its standard output (fd " + fd + ")", read: func(off, limit int64) ([]byte, int64, error) {
			fh, err := os.Open(path)
			if err != nil {
				return nil, 0, err
			}
			defer fh.Close()
			return readFrom(fh, off, limit)
		}}
	}
	return nil
}

// readFrom reads from off (negative: the last -off bytes) up to max
// bytes, returning the data and the file's size.
func readFrom(fh *os.File, off, limit int64) ([]byte, int64, error) {
	st, err := fh.Stat()
	if err != nil {
		return nil, 0, err
	}
	size := st.Size()
	if off < 0 {
		off = max(size+off, 0)
	}
	if off > size { // rotated or truncated
		off = 0
	}
	n := min(size-off, limit)
	buf := make([]byte, n)
	k, _ := fh.ReadAt(buf, off)
	return buf[:k], size, nil
}

// begin reads the history and remembers where the log ended.
func (l *shipperLog) begin() error {
	b, size, err := l.read(-logTailBytes, logTailBytes)
	if err != nil {
		return err
	}
	l.start = size
	l.history = logLines(b, size > logTailBytes)
	return nil
}

// end reads what was written since begin.
func (l *shipperLog) end() error {
	b, _, err := l.read(l.start, logTailBytes)
	if err != nil {
		return err
	}
	l.fresh = logLines(b, false)
	return nil
}

func logLines(b []byte, cut bool) []string {
	if cut {
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.TrimSpace(l) != "" {
			out = append(out, l)
		}
	}
	return out
}

var (
	fdFlushError = regexp.MustCompile(`failed to flush the buffer.*?error_class=(\S+) error="(.*)"`)
	fdPluginID   = regexp.MustCompile(`\]: (?:#\d+ )?\[([^\]]+)\]`)
	fbOutputName = regexp.MustCompile(`(?:output=|\[output:[^:\]]+:)([A-Za-z0-9_.-]+)`)
)

// logEvent is one line of interest.
type logEvent struct {
	Line   string `json:"line"`
	Plugin string `json:"plugin,omitempty"` // the plugin id or instance it names
	Kind   string `json:"kind"`             // error or drop
	Fresh  bool   `json:"during_run"`
}

// events picks errors and drops out of the log lines, newest last.
func (l *shipperLog) events(kind Kind) []logEvent {
	var out []logEvent
	scan := func(lines []string, fresh bool) {
		for _, line := range lines {
			ev, ok := classifyLogLine(kind, line)
			if ok {
				ev.Fresh = fresh
				out = append(out, ev)
			}
		}
	}
	scan(l.history, false)
	scan(l.fresh, true)
	return out
}

// classifyLogLine recognises the lines that say an output failed or
// dropped data.
func classifyLogLine(kind Kind, line string) (logEvent, bool) {
	clip := func(s string) string {
		s = report.Redact(strings.TrimSpace(s))
		if len(s) > 400 {
			s = s[:400] + "..."
		}
		return s
	}
	if kind == Fluentd {
		var ev logEvent
		switch {
		case strings.Contains(line, "hit limit for retries"), strings.Contains(line, "dropping all chunks"),
			strings.Contains(line, "retry_forever false") && strings.Contains(line, "discard"),
			strings.Contains(line, "BufferOverflowError"), strings.Contains(line, "buffer space has too many data"),
			strings.Contains(line, "Dropping chunk"):
			ev.Kind = "drop"
		case strings.Contains(line, "failed to flush the buffer"), strings.Contains(line, "[error]:"),
			strings.Contains(line, "Could not communicate to Elasticsearch"), strings.Contains(line, "could not push logs to Elasticsearch"):
			ev.Kind = "error"
		default:
			return logEvent{}, false
		}
		ev.Line = clip(line)
		if m := fdFlushError.FindStringSubmatch(line); m != nil {
			ev.Line = clip(m[1] + ": " + m[2])
		}
		if m := fdPluginID.FindStringSubmatch(line); m != nil {
			ev.Plugin = m[1]
		}
		return ev, true
	}
	var ev logEvent
	switch {
	case strings.Contains(line, "cannot be retried"), strings.Contains(line, "retries exhausted"), strings.Contains(line, "dropping"),
		strings.Contains(line, "chunk dropped"), strings.Contains(line, "discarded"):
		ev.Kind = "drop"
	case strings.Contains(line, "[error]"), strings.Contains(line, "failed to flush chunk"):
		ev.Kind = "error"
	default:
		return logEvent{}, false
	}
	ev.Line = clip(line)
	if m := fbOutputName.FindStringSubmatch(line); m != nil {
		ev.Plugin = m[1]
	}
	return ev, true
}
