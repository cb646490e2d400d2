package essim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"unsafe"
)

// BulkOp is the action of one bulk item.
type BulkOp uint8

const (
	OpIndex BulkOp = iota + 1
	OpCreate
	OpUpdate
	OpDelete
)

func (o BulkOp) String() string {
	switch o {
	case OpIndex:
		return "index"
	case OpCreate:
		return "create"
	case OpUpdate:
		return "update"
	case OpDelete:
		return "delete"
	}
	return "unknown"
}

// BulkItem is one action of a bulk body. Source aliases the body: it is the
// document line exactly as sent (no re-encoding), nil for delete. ID may
// alias the body too: the body must not change while an item is in use,
// and a store keeping an ID with a source from elsewhere (an update's)
// keeps a copy (strings.Clone), not the whole body.
type BulkItem struct {
	Op     BulkOp
	Index  string
	ID     string
	Source []byte
	Line   int    // 1-based line of the action
	Type   string // _type from the action line (Elasticsearch 6/7 clients); 8 rejects it
}

// ErrBulk is wrapped by every request-level bulk parse error; Elasticsearch
// answers those with 400 illegal_argument_exception / x_content_parse.
var ErrBulk = errors.New("malformed bulk request")

// maxActionLine caps the action/metadata line: metadata is small, and a huge
// one means the body is not NDJSON.
const maxActionLine = 64 << 10

type actionMeta struct {
	Type    string `json:"_type"`
	Index   string `json:"_index"`
	ID      string `json:"_id"`
	Routing string `json:"routing"`
}

type actionLine struct {
	Index  *actionMeta `json:"index"`
	Create *actionMeta `json:"create"`
	Update *actionMeta `json:"update"`
	Delete *actionMeta `json:"delete"`
}

// ParseBulk walks an NDJSON bulk body, calling fn for each item in order.
// Only the action line is decoded; the document line is passed through as
// raw bytes. defaultIndex applies to items without _index (the
// /{index}/_bulk form). It stops at the first malformed action line, like
// Elasticsearch, which rejects the whole request then.
func ParseBulk(body []byte, defaultIndex string, fn func(BulkItem) error) error {
	if len(body) > 0 && body[len(body)-1] != '\n' {
		return fmt.Errorf("%w: The bulk request must be terminated by a newline [\\n]", ErrBulk)
	}
	line := 0
	// lastIndex is the previous fast-read _index: a bulk's items nearly
	// all name the same index, which then costs one string, not one each.
	lastIndex := ""
	next := func() ([]byte, bool) {
		if len(body) == 0 {
			return nil, false
		}
		i := bytes.IndexByte(body, '\n')
		var l []byte
		if i < 0 {
			l, body = body, nil
		} else {
			l, body = body[:i], body[i+1:]
		}
		line++
		return bytes.TrimSuffix(l, []byte("\r")), true
	}
	for {
		a, ok := next()
		if !ok {
			return nil
		}
		if len(bytes.TrimSpace(a)) == 0 {
			continue
		}
		aLine := line
		if len(a) > maxActionLine {
			return fmt.Errorf("%w: action/metadata line [%d] is %d bytes, longer than %d", ErrBulk, aLine, len(a), maxActionLine)
		}
		it := BulkItem{Line: aLine}
		if op, index, id, ok := fastAction(a); ok {
			if string(index) != lastIndex {
				lastIndex = string(index)
			}
			it.Op, it.Index = op, lastIndex
			if len(id) > 0 {
				// The id aliases the body, as the source does: no
				// string of its own to allocate and for the garbage
				// collector to mark, one per document an in-memory
				// store keeps. The body is never written to.
				it.ID = unsafe.String(&id[0], len(id))
			}
		} else if err := decodeAction(a, &it); err != nil {
			return err
		}
		if it.Index == "" {
			it.Index = defaultIndex
		}
		if it.Op != OpDelete {
			src, ok := next()
			if !ok {
				return fmt.Errorf("%w: action/metadata line [%d] has no source line", ErrBulk, aLine)
			}
			it.Source = src
		}
		if err := fn(it); err != nil {
			return err
		}
	}
}

// decodeAction reads an action/metadata line with encoding/json into it
// (whose Line is set): what the fast reader leaves, and the reference the
// fuzzers hold that reader to.
func decodeAction(a []byte, it *BulkItem) error {
	var al actionLine
	if err := json.Unmarshal(a, &al); err != nil {
		return fmt.Errorf("%w: Malformed action/metadata line [%d], expected START_OBJECT or END_OBJECT: %v", ErrBulk, it.Line, err)
	}
	var m *actionMeta
	count := 0
	for _, c := range []struct {
		op BulkOp
		m  *actionMeta
	}{{OpIndex, al.Index}, {OpCreate, al.Create}, {OpUpdate, al.Update}, {OpDelete, al.Delete}} {
		if c.m != nil {
			it.Op, m = c.op, c.m
			count++
		}
	}
	if count != 1 {
		return fmt.Errorf("%w: Malformed action/metadata line [%d], expected field [create], [delete], [index] or [update]", ErrBulk, it.Line)
	}
	it.Index, it.ID, it.Type = m.Index, m.ID, m.Type
	return nil
}
