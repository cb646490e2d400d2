package interop

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/logdoctor/logdoctor/internal/shippertest"
)

// A Fluentd with monitor_agent, a memory buffer and a forward output
// without acks (to a receiver that never acks anyway).
const exporterFluentd = `
<source>
  @type monitor_agent
  bind 127.0.0.1
  port {{.Monitor}}
</source>
<source>
  @type sample
  tag exporter.test
  rate 20
  sample {"msg":"exporter discovery"}
</source>
<match exporter.**>
  @type forward
  @id out_fwd
  <server>
    host 127.0.0.1
    port {{.Forward}}
  </server>
  <buffer>
    @type memory
    flush_interval 1s
  </buffer>
</match>
`

// A Fluent Bit with its HTTP server, a dummy input and an es output.
const exporterFluentBit = `
[SERVICE]
    Flush       1
    Log_Level   info
    HTTP_Server On
    HTTP_Listen 127.0.0.1
    HTTP_Port   {{.HTTP}}
[INPUT]
    Name dummy
    Tag  exporter.test
    Rate 20
[OUTPUT]
    Name               es
    Match              *
    Host               127.0.0.1
    Port               {{.ESPort}}
    Suppress_Type_Name On
`

// TestExporterDiscoversShippers runs the exporter beside a real Fluentd
// and a real Fluent Bit it is not told about: it finds both in /proc
// (doctor's discovery), reads their configurations through
// /proc/PID/root, watches their sockets with the configured endpoints as
// peers, and reads their own metrics endpoints.
func TestExporterDiscoversShippers(t *testing.T) {
	t.Parallel()
	peers := shippers.Require(t)
	es := esServe(t)
	esPort := es[strings.LastIndexByte(es, ':')+1:]
	fwd := fmt.Sprintf("127.0.0.1:%d", shippertest.FreePort(t))
	start(t, fwd, "forward", "serve", "--listen", fwd, "--ack", "never", "-o", "json")

	fbHTTP := shippertest.FreePort(t)
	fb := shippertest.Start(t, peers, shippertest.Spec{Kind: shippertest.FluentBit, Config: exporterFluentBit,
		WaitTCP: []string{fmt.Sprintf("127.0.0.1:%d", fbHTTP)}, Data: map[string]any{"HTTP": fbHTTP, "ESPort": esPort}})
	fdMon := shippertest.FreePort(t)
	fd := shippertest.Start(t, peers, shippertest.Spec{Kind: shippertest.Fluentd, Config: exporterFluentd,
		WaitTCP: []string{fmt.Sprintf("127.0.0.1:%d", fdMon)}, Data: map[string]any{"Monitor": fdMon, "Forward": strings.TrimPrefix(fwd, "127.0.0.1:")}})

	exp := fmt.Sprintf("127.0.0.1:%d", shippertest.FreePort(t))
	start(t, exp, "exporter", "--listen", exp, "--interval", "1s", "--timeout", "1s")

	// Other tests may run shippers too: find ours by process id.
	var text string
	var fdName, fbName string
	checks := map[string]func() bool{
		"both shippers found with their configuration": func() bool {
			fdName = shipperName(text, fd.PID(), fd.Config)
			fbName = shipperName(text, fb.PID(), fb.Config)
			return fdName != "" && fbName != ""
		},
		"Fluentd's memory buffer, with file and line": func() bool {
			return strings.Contains(text, `logdoctor_finding{id="config.memory_buffer",severity="warning",shipper="`+fdName+`",target="`+fd.Config+`:`)
		},
		"Fluentd's forward output without acks": func() bool {
			return strings.Contains(text, `logdoctor_finding{id="config.forward_no_ack",severity="critical",shipper="`+fdName+`"`)
		},
		"Fluentd's connection to its forward server": func() bool {
			// out_forward connects per flush (keepalive is off by default).
			key := `logdoctor_tcp_target_sockets{alias="forward",shipper="` + fdName + `",state="%s",target="` + fwd + `"}`
			return value(text, fmt.Sprintf(key, "ESTABLISHED"))+value(text, fmt.Sprintf(key, "TIME_WAIT")) >= 1
		},
		"Fluent Bit's connection to its Elasticsearch": func() bool {
			key := `logdoctor_tcp_target_sockets{alias="es",shipper="` + fbName + `",state="%s",target="127.0.0.1:` + esPort + `"}`
			return value(text, fmt.Sprintf(key, "ESTABLISHED"))+value(text, fmt.Sprintf(key, "TIME_WAIT")) >= 1
		},
		"Fluentd's buffer from monitor_agent": func() bool {
			return strings.Contains(text, `logdoctor_shipper_buffer_queued_bytes{plugin_id="out_fwd",shipper="`+fdName+`"}`) &&
				strings.Contains(text, `logdoctor_shipper_buffer_limit_bytes{plugin_id="out_fwd",shipper="`+fdName+`"} 5.36870912e+08`)
		},
		"Fluent Bit's records from its HTTP server": func() bool {
			return value(text, `logdoctor_shipper_input_records_total{plugin_id="dummy.0",shipper="`+fbName+`"}`) > 0 &&
				value(text, `logdoctor_shipper_output_records_total{plugin_id="es.0",shipper="`+fbName+`"}`) > 0
		},
	}
	deadline := time.Now().Add(40 * time.Second)
	for {
		text = getText(t, "http://"+exp+"/metrics")
		var missing []string
		for _, name := range []string{"both shippers found with their configuration", "Fluentd's memory buffer, with file and line",
			"Fluentd's forward output without acks", "Fluentd's connection to its forward server", "Fluent Bit's connection to its Elasticsearch",
			"Fluentd's buffer from monitor_agent", "Fluent Bit's records from its HTTP server"} {
			if !checks[name]() {
				missing = append(missing, name)
			}
		}
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 40 s, missing: %s\n%s", strings.Join(missing, "; "), grepLogdoctor(text))
		}
		time.Sleep(500 * time.Millisecond)
	}
	// Fluent Bit stops: its sources go with it.
	fb.Stop(t)
	deadline = time.Now().Add(15 * time.Second)
	for strings.Contains(getText(t, "http://"+exp+"/metrics"), `shipper="`+fbName+`"`) {
		if time.Now().After(deadline) {
			t.Fatalf("the stopped Fluent Bit's series are still served")
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// shipperName reads the shipper label logdoctor_shipper_info gives pid,
// once its configuration is the expected one.
func shipperName(text string, pid int, config string) string {
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(line, "logdoctor_shipper_info{") || !strings.Contains(line, `pid="`+strconv.Itoa(pid)+`"`) ||
			!strings.Contains(line, `config="`+config+`"`) {
			continue
		}
		_, rest, _ := strings.Cut(line, `shipper="`)
		name, _, _ := strings.Cut(rest, `"`)
		return name
	}
	return ""
}

// value is the value of the series written exactly as key, or -1.
func value(text, key string) float64 {
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, key+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}

func getText(t *testing.T, u string) string {
	t.Helper()
	resp, err := (&http.Client{Timeout: 3 * time.Second}).Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func grepLogdoctor(text string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, "logdoctor_") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
