package pipeline

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/logdoctor/logdoctor/internal/reopen"
)

// deadLetters appends one JSON line per refused event to a file: garbage
// UDP datagrams and events Elasticsearch refused for good or that were
// given up after the retry timeout. Nothing is dropped silently. The file
// reopens on SIGHUP (Pipeline.Reopen) like the log.
type deadLetters struct {
	*reopen.File
	now func() time.Time
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
	f, err := reopen.Open(path)
	if err != nil {
		return nil, fmt.Errorf("dead-letter file: %w", err)
	}
	return &deadLetters{File: f, now: now}, nil
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
	if _, err := d.Write(line); err != nil {
		return fmt.Errorf("dead-letter file: %w", err)
	}
	return nil
}
