package gpu

import (
	"errors"
	"time"
)

// timestampSteps needs timestamp queries, which cogentcore/webgpu's browser
// build does not bind; the browser's device never asks for them
// (device.timestamps stays false), so profiles there time submissions.
func (b *Backend) timestampSteps(pl *plan, reps int) (map[string]time.Duration, float64, error) {
	return nil, 0, errors.New("timestamp queries are not available in the browser build")
}
