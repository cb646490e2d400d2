package cli

import "context"

// startEmbeddedES starts the in-process Elasticsearch stand-in.
func startEmbeddedES(ctx context.Context, dataDir string) (string, func() error, error) {
	return "", nil, errNoEmbedded
}
