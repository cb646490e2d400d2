package pipeline

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"time"
	"unicode/utf8"
)

// deadLetters appends one JSON line per refused event to a file: garbage
// UDP datagrams and events Elasticsearch refused for good or that were
// given up after the retry timeout. Nothing is dropped silently.
type deadLetters struct {
	mu   sync.Mutex
	path string
	f    *os.File
	now  func() time.Time
}

// DeadLetter is one line of the dead-letter file.
type DeadLetter struct {
	Time   time.Time `json:"time"`
	Source string    `json:"source"` // "udp" or "elasticsearch"
	Reason string    `json:"reason"`
	Peer   string    `json:"peer,omitempty"`
	Tag    string    `json:"tag,omitempty"`
	ID     string    `json:"id,omitempty"`
	// Data is the event (the document, or the datagram as received) when
	// it is valid UTF-8; DataBase64 otherwise.
	Data       string `json:"data,omitempty"`
	DataBase64 string `json:"data_base64,omitempty"`
}

func openDeadLetters(path string, now func() time.Time) (*deadLetters, error) {
	d := &deadLetters{path: path, now: now}
	if err := d.Reopen(); err != nil {
		return nil, err
	}
	return d, nil
}

// Reopen closes and reopens the file (after logrotate moved it).
func (d *deadLetters) Reopen() error {
	f, err := os.OpenFile(d.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("dead-letter file: %w", err)
	}
	d.mu.Lock()
	old := d.f
	d.f = f
	d.mu.Unlock()
	if old != nil {
		old.Close()
	}
	return nil
}

func (d *deadLetters) write(dl DeadLetter, data []byte) error {
	dl.Time = d.now().UTC()
	if utf8.Valid(data) {
		dl.Data = string(data)
	} else {
		dl.DataBase64 = base64.StdEncoding.EncodeToString(data)
	}
	line, err := json.Marshal(dl)
	if err != nil {
		return err
	}
	line = append(line, '\n')
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.f == nil {
		return fmt.Errorf("dead-letter file closed")
	}
	if _, err := d.f.Write(line); err != nil {
		return fmt.Errorf("dead-letter file: %w", err)
	}
	return nil
}

func (d *deadLetters) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.f == nil {
		return nil
	}
	err := d.f.Close()
	d.f = nil
	return err
}
