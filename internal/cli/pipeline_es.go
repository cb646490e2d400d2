package cli

import (
	"context"

	"github.com/logdoctor/logdoctor/pkg/essim"
)

// startEmbeddedES starts the in-process Elasticsearch stand-in on a free
// loopback port: the pipeline talks HTTP to it like to any cluster.
func startEmbeddedES(ctx context.Context, dataDir string) (string, func() error, error) {
	s, err := essim.Start(ctx, "127.0.0.1:0", essim.Config{DataDir: dataDir})
	if err != nil {
		return "", nil, err
	}
	return s.URL(), s.Close, nil
}
