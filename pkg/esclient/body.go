package esclient

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"sync"
)

// ErrBodyTooLarge: an answer larger than the reader's limit. It is an
// error, never a silently cut body that then fails to parse.
var ErrBodyTooLarge = errors.New("answer larger than the client reads")

// drainLimit is how much of an unread answer is read away before the body
// is closed, so that its connection goes back to the pool: a body left
// unread is how clients pile up CLOSE_WAIT and TIME_WAIT sockets.
const drainLimit = 1 << 20

// ReadBody reads r to its end into dst[:0] (grown as needed; pass nil for
// a new slice) and fails with ErrBodyTooLarge past limit bytes.
func ReadBody(dst []byte, r io.Reader, limit int64) ([]byte, error) {
	b := dst[:0]
	lr := io.LimitReader(r, limit+1)
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := lr.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if int64(len(b)) > limit {
			return b[:limit], ErrBodyTooLarge
		}
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return b, err
		}
	}
}

// drainClose reads what is left of a body (up to drainLimit) and closes it.
func drainClose(rc io.ReadCloser) {
	_, _ = io.Copy(io.Discard, io.LimitReader(rc, drainLimit)) // best effort: the body is closed either way
	rc.Close()
}

// Gzipper compresses request bodies with pooled writers at BestSpeed: a
// bulk body is compressed once and sent once, so speed beats ratio.
type Gzipper struct{ pool sync.Pool }

// Compress returns body gzipped.
func (g *Gzipper) Compress(body []byte) []byte {
	var buf bytes.Buffer
	zw, _ := g.pool.Get().(*gzip.Writer)
	if zw == nil {
		zw, _ = gzip.NewWriterLevel(&buf, gzip.BestSpeed) // a valid level cannot fail
	} else {
		zw.Reset(&buf)
	}
	// Writes to a bytes.Buffer do not fail.
	_, _ = zw.Write(body)
	_ = zw.Close()
	g.pool.Put(zw)
	return buf.Bytes()
}
