package interop

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/logdoctor/logdoctor/internal/shippertest"
)

const fluentBitUDPLimits = `
[SERVICE]
    Flush        1
    Log_Level    info
    Parsers_File {{.Parsers}}
[INPUT]
    Name        udp
    Listen      127.0.0.1
    Port        {{.Small}}
    Chunk_Size  2
    Buffer_Size 64
    Tag         small
[INPUT]
    Name        udp
    Listen      127.0.0.1
    Port        {{.Default}}
    Buffer_Size 64
    Tag         default
[INPUT]
    Name              syslog
    Mode              udp
    Listen            127.0.0.1
    Port              {{.Syslog}}
    Parser            pri-only
    Buffer_Chunk_Size 2k
    Buffer_Max_Size   64k
    Tag               sys
[OUTPUT]
    Name   stdout
    Match  *
    Format json_lines
`

// TestFluentBitUDPLimits: the largest datagram config.udp_message_size
// says each Fluent Bit UDP input accepts is what the real Fluent Bit 4.2.8
// accepts: Chunk_Size (not Buffer_Size) bounds udp, whose longer JSON
// datagrams are dropped, and Buffer_Chunk_Size (not Buffer_Max_Size)
// bounds syslog over UDP, whose longer messages arrive cut.
func TestFluentBitUDPLimits(t *testing.T) {
	t.Parallel()
	peers := shippers.Require(t)
	parsers := filepath.Join(t.TempDir(), "parsers.conf")
	if err := os.WriteFile(parsers, []byte("[PARSER]\n    Name   pri-only\n    Format regex\n    Regex  ^\\<(?<pri>[0-9]+)\\>(?<message>.*)$\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ports := map[string]int{"small": shippertest.FreePort(t), "default": shippertest.FreePort(t), "sys": shippertest.FreePort(t)}
	p := shippertest.Start(t, peers, shippertest.Spec{Kind: shippertest.FluentBit, Config: fluentBitUDPLimits, WaitLog: "UDP server binding",
		Data: map[string]any{"Parsers": parsers, "Small": ports["small"], "Default": ports["default"], "Syslog": ports["sys"]}})

	r := run(t, time.Minute, "config", "check", "-o", "json", "--mtu", "1500", "--fail-on", "never", p.Config)
	limits := map[string]int{}
	for _, f := range parseReport(t, r).Findings {
		if f.ID != "config.udp_message_size" {
			continue
		}
		n, _ := f.Evidence["limit_bytes"].(float64)
		// The inputs have no alias: tell them by the setting's value.
		tag := map[string]string{"2": "small", "32768": "default", "2k": "sys"}[fmt.Sprint(f.Evidence["value"])]
		limits[tag] = int(n)
		if f.Evidence["ignored"] == nil {
			t.Errorf("%s: the evidence does not say the larger buffer setting is no limit: %v", tag, f.Evidence)
		}
	}
	if limits["small"] != 2047 || limits["default"] != 32767 || limits["sys"] != 1999 {
		t.Fatalf("config check limits %v; want small 2047, default 32767, sys 1999\n%s", limits, r)
	}

	send := func(tag string, n int) {
		t.Helper()
		conn, err := net.Dial("udp", fmt.Sprintf("127.0.0.1:%d", ports[tag]))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		var msg string
		if tag == "sys" {
			pre := fmt.Sprintf("<13>id=%s-%d ", tag, n)
			msg = pre + strings.Repeat("y", n-len(pre))
		} else {
			pre := fmt.Sprintf(`{"id":"%s-%d","m":"`, tag, n)
			msg = pre + strings.Repeat("x", n-len(pre)-2) + `"}`
		}
		if _, err := conn.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
	}
	for _, tag := range []string{"small", "default", "sys"} {
		send(tag, limits[tag])
		send(tag, limits[tag]+1)
	}
	// What arrived, by id, with its length as received.
	got := map[string]int{}
	waitFor(t, 15*time.Second, "the datagrams at each limit", func() bool {
		for _, l := range strings.Split(p.Log(), "\n") {
			var rec struct {
				ID      string `json:"id"`
				M       string `json:"m"`
				Message string `json:"message"`
			}
			if json.Unmarshal([]byte(l), &rec) != nil {
				continue
			}
			if rec.ID != "" {
				got[rec.ID] = len(rec.M)
			} else if id, _, ok := strings.Cut(strings.TrimPrefix(rec.Message, "id="), " "); ok {
				got[id] = len("<13>") + len(rec.Message)
			}
		}
		return len(got) >= 4
	})
	time.Sleep(2 * time.Second) // one more flush: anything over a limit would be there by now
	for _, tag := range []string{"small", "default"} {
		n := limits[tag]
		if _, ok := got[fmt.Sprintf("%s-%d", tag, n)]; !ok {
			t.Errorf("udp %s: the %d-byte datagram (the limit) did not arrive: %v", tag, n, got)
		}
		if _, ok := got[fmt.Sprintf("%s-%d", tag, n+1)]; ok {
			t.Errorf("udp %s: a %d-byte datagram (over the limit) arrived: %v", tag, n+1, got)
		}
	}
	n := limits["sys"]
	if got[fmt.Sprintf("sys-%d", n)] != n || got[fmt.Sprintf("sys-%d", n+1)] != n {
		t.Errorf("syslog: want the %d-byte message whole and the %d-byte one cut to %d: %v", n, n+1, n, got)
	}
}
