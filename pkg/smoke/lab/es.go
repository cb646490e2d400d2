package lab

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"

	"github.com/logdoctor/logdoctor/pkg/essim"
)

// ESDirName is where the embedded Elasticsearch keeps its
// documents inside the buffer directory when --es-data is not given.
const ESDirName = "embedded-es"

// EmbeddedES is the in-process Elasticsearch stand-in of `pipeline run
// --es embedded`.
type EmbeddedES struct {
	URL string // its loopback URL, for everyone outside this process
	Dir string // where it keeps its documents
	// Transport serves the pipeline's requests in process (see
	// essim.Server.Transport): the same requests and answers as over
	// HTTP, without a loopback socket between two parts of one process.
	// Measured with bench/pipeline.sh's load at 2 senders, 2M events:
	// the pipeline caught up into it at 446-476k events/s against
	// 383-411k over the loopback socket (3 alternating pairs).
	Transport http.RoundTripper
	Stop      func() error       // stops it, removing a temporary Dir
	Stats     func() essim.Stats // the documents it holds, the memory their tables take
}

// StartES starts the in-process Elasticsearch stand-in on a free
// loopback port, which the pipeline reaches through EmbeddedES.Transport
// and everyone else over HTTP. It is always disk-backed so the sources
// are not held in memory (essim then keeps ids and sources only in its
// log, and ~35 bytes per document in memory). dataDir (--es-data) keeps
// the documents across restarts; without it they go to
// bufferDir/embedded-es (the temp dir with --memory-buffer), emptied at
// start and removed at stop, so like an in-memory store nothing outlives
// the process. maxDocs (--es-max-docs) bounds its memory: past it writes
// are refused as past Elasticsearch's flood-stage watermark. Cancelling
// ctx does not stop it: Stop does.
func StartES(ctx context.Context, dataDir, bufferDir string, maxDocs int64) (*EmbeddedES, error) {
	dir, temporary := dataDir, false
	switch {
	case dataDir != "":
	case bufferDir != "":
		// The buffer creates its directory 0700; create it first with the
		// same mode so essim's MkdirAll does not make it 0755.
		if err := os.MkdirAll(bufferDir, 0o700); err != nil {
			return nil, fmt.Errorf("buffer dir: %w", err)
		}
		dir, temporary = filepath.Join(bufferDir, ESDirName), true
		// Left over by a crash: those documents were meant to vanish.
		if err := os.RemoveAll(dir); err != nil {
			return nil, fmt.Errorf("removing the previous %s: %w", dir, err)
		}
	default:
		d, err := os.MkdirTemp("", "logdoctor-embedded-es-")
		if err != nil {
			return nil, err
		}
		dir, temporary = d, true
	}
	// Only stop ends it, and the caller calls stop once the pipeline has
	// flushed: ctx ends with the SIGTERM that starts that flush, and an
	// essim tied to it was gone 22 ms later, leaving the whole buffer
	// behind (pipeline.left_in_buffer).
	s, err := essim.Start(context.WithoutCancel(ctx), "127.0.0.1:0", essim.Config{DataDir: dir, MaxDocs: maxDocs})
	if err != nil {
		if temporary {
			os.RemoveAll(dir)
		}
		return nil, err
	}
	stop := func() error {
		err := s.Close()
		if temporary {
			err = errors.Join(err, os.RemoveAll(dir))
		}
		return err
	}
	return &EmbeddedES{URL: s.URL(), Dir: dir, Transport: s.Transport(), Stop: stop, Stats: s.Stats}, nil
}
