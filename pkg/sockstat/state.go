package sockstat

import (
	"encoding/json"
	"fmt"
	"strings"
)

// State is a kernel TCP state as numbered in include/net/tcp_states.h, the
// "st" column of /proc/net/tcp.
type State uint8

// The kernel's TCP states. NEW_SYN_RECV (request sockets) is listed by the
// kernel as SYN_RECV in /proc, but is named here so every state has a name.
const (
	Established State = 1 + iota
	SynSent
	SynRecv
	FinWait1
	FinWait2
	TimeWait
	Close
	CloseWait
	LastAck
	Listen
	Closing
	NewSynRecv
)

// NumStates bounds the State values with a name; StateCounts is indexed by
// State.
const NumStates = int(NewSynRecv) + 1

var stateNames = [NumStates]string{
	"", "ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT",
	"CLOSE", "CLOSE_WAIT", "LAST_ACK", "LISTEN", "CLOSING", "NEW_SYN_RECV",
}

// AllStates lists every named state in kernel order.
func AllStates() []State {
	out := make([]State, 0, NumStates-1)
	for s := Established; s <= NewSynRecv; s++ {
		out = append(out, s)
	}
	return out
}

// String gives the name ss and netstat use (ESTABLISHED, CLOSE_WAIT, ...).
func (s State) String() string {
	if int(s) < NumStates && s != 0 {
		return stateNames[s]
	}
	return fmt.Sprintf("STATE_%d", uint8(s))
}

// Valid reports whether s is one of the named kernel states.
func (s State) Valid() bool { return s >= Established && s <= NewSynRecv }

// ParseState accepts a state name in any case, with "-" or "_" (close-wait,
// CLOSE_WAIT, fin-wait-1, FIN_WAIT1).
func ParseState(name string) (State, error) {
	n := strings.ToUpper(strings.ReplaceAll(strings.TrimSpace(name), "-", "_"))
	n = strings.ReplaceAll(n, "WAIT_", "WAIT") // FIN_WAIT_1 -> FIN_WAIT1
	for s := Established; s <= NewSynRecv; s++ {
		if stateNames[s] == n {
			return s, nil
		}
	}
	if n == "ESTAB" {
		return Established, nil
	}
	return 0, fmt.Errorf("unknown TCP state %q (want one of %s)", name, strings.Join(stateNames[1:], ", "))
}

// StateCounts counts sockets per state, indexed by State.
type StateCounts [NumStates]int

// Total is the number of sockets counted.
func (c *StateCounts) Total() int {
	n := 0
	for _, v := range c {
		n += v
	}
	return n
}

// MarshalJSON writes every named state, zeros included, in kernel order so
// `jq .states.CLOSE_WAIT` always yields a number.
func (c StateCounts) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, 256)
	b = append(b, '{')
	for s := Established; s <= NewSynRecv; s++ {
		if s != Established {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = append(b, stateNames[s]...)
		b = append(b, '"', ':')
		b = fmt.Appendf(b, "%d", c[s])
	}
	return append(b, '}'), nil
}

// UnmarshalJSON reads what MarshalJSON wrote (tests and consumers of saved
// reports).
func (c *StateCounts) UnmarshalJSON(b []byte) error {
	var m map[string]int
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("states: %w", err)
	}
	*c = StateCounts{}
	for k, v := range m {
		s, err := ParseState(k)
		if err != nil {
			return err
		}
		c[s] = v
	}
	return nil
}
