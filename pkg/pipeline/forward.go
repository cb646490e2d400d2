package pipeline

import (
	"context"
	"errors"
)

// startForward is replaced by the forward input once pkg/forward lands.
func (p *Pipeline) startForward(ctx context.Context) error {
	return errors.New("pipeline: forward input not built yet")
}
