package forwardserve

import (
	"strings"
	"testing"
	"time"
)

func TestParseAckPolicy(t *testing.T) {
	good := map[string]AckPolicy{
		"always":        {Kind: AckAlways},
		"never":         {Kind: AckNever},
		"wrong":         {Kind: AckWrong},
		"delay=250ms":   {Kind: AckDelay, Delay: 250 * time.Millisecond},
		"drop-rate=0.5": {Kind: AckDropRate, Rate: 0.5},
		"drop-rate=1":   {Kind: AckDropRate, Rate: 1},
	}
	for s, want := range good {
		if got, err := ParseAckPolicy(s); err != nil || got != want {
			t.Errorf("%q: %+v, %v; want %+v", s, got, err, want)
		}
	}
	bad := map[string]string{
		"sometimes":     "want always, never, wrong",
		"delay":         "want always, never, wrong",
		"delay=-1s":     "want a duration",
		"delay=soon":    "want a duration",
		"drop-rate=1.5": "want a probability from 0 to 1",
		"drop-rate=x":   "want a probability from 0 to 1",
		"always=1":      "want always, never, wrong",
	}
	for s, want := range bad {
		if _, err := ParseAckPolicy(s); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want an error saying %q", s, err, want)
		}
	}
}
