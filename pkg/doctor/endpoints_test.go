package doctor

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/logdoctor/logdoctor/pkg/shipconf"
)

func TestFindEndpointsFluentd(t *testing.T) {
	conf := `<source>
  @type monitor_agent
  bind 0.0.0.0
  port 24299
</source>
<source>
  @type udp
  port 5170
  message_length_limit 8192
  <parse>
    @type json
  </parse>
</source>
<match es.**>
  @type elasticsearch
  hosts https://elastic:s3cret@es-0:9243/prefix,es-1:9201
  ca_file /etc/ssl/es.pem
  reload_connections false
</match>
<match es2.**>
  @type elasticsearch
  host "#{ENV['ES_HOST']}"
  user elastic
  password "#{ENV['ES_PASSWORD']}"
</match>
<match fwd.**>
  @type forward
  transport tls
  tls_insecure_mode true
  require_ack_response
  <security>
    self_hostname sender
    shared_key k1
  </security>
  <server>
    host 127.0.0.1
    port 24225
  </server>
  <server>
    host 127.0.0.2
    shared_key k2
  </server>
</match>
`
	c, err := shipconf.Parse("fluent.conf", []byte(conf), shipconf.Options{Format: shipconf.FormatFluentd,
		Env: map[string]string{"ES_HOST": "127.0.0.1", "ES_PASSWORD": "pw-from-env"}})
	if err != nil {
		t.Fatal(err)
	}
	e := FindEndpoints(c)
	if e.Monitor == nil || e.Monitor.Addr != "127.0.0.1:24299" || e.Monitor.Kind != "monitor_agent" {
		t.Errorf("monitor %+v", e.Monitor)
	}
	if len(e.UDP) != 1 || e.UDP[0].Port != 5170 || e.UDP[0].Limit != 8192 || e.UDP[0].LimitParam.Pos.Line != 9 {
		t.Errorf("udp %+v", e.UDP)
	}
	if len(e.ES) != 2 {
		t.Fatalf("es %+v", e.ES)
	}
	a, b := e.ES[0], e.ES[1]
	if len(a.URLs) != 2 || a.URLs[0] != "https://es-0:9243/prefix" || a.URLs[1] != "http://es-1:9201" || a.User != "elastic" || a.Password != "s3cret" ||
		!a.TLS || a.CAFile != "/etc/ssl/es.pem" || a.Sniffs || a.HostAt.Line != 16 {
		t.Errorf("hosts output %+v", a)
	}
	if len(b.URLs) != 1 || b.URLs[0] != "http://127.0.0.1:9200" || b.Password != "pw-from-env" || !b.Sniffs || b.BulkSize != 8<<20 {
		t.Errorf("env output %+v", b)
	}
	if len(e.Forward) != 1 {
		t.Fatalf("forward %+v", e.Forward)
	}
	f := e.Forward[0]
	if len(f.Servers) != 2 || f.Servers[0].Addr != "127.0.0.1:24225" || f.Servers[0].SharedKey != "k1" || f.Servers[1].Addr != "127.0.0.2:24224" ||
		f.Servers[1].SharedKey != "k2" || !f.TLS || f.Verify || !f.RequireAck || f.SelfHostname != "sender" {
		t.Errorf("forward %+v", f)
	}
	b2, _ := json.Marshal(e)
	for _, secret := range []string{"s3cret", "pw-from-env", "k1", "k2"} {
		if strings.Contains(string(b2), secret) {
			t.Errorf("the endpoints' JSON holds %q: %s", secret, b2)
		}
	}
}

func TestFindEndpointsFluentBit(t *testing.T) {
	conf := `[SERVICE]
    HTTP_Server On
    HTTP_Port 2021
[INPUT]
    Name udp
    Port 5171
[OUTPUT]
    Name es
    Match *
    Host ${ES_HOST}
    Port 9202
    HTTP_User elastic
    HTTP_Passwd ${ES_PW}
    tls On
    tls.verify Off
[OUTPUT]
    Name forward
    Match *
    Host ${MISSING}
    Shared_Key abc
    Require_ack_response On
`
	c, err := shipconf.Parse("fluent-bit.conf", []byte(conf), shipconf.Options{Format: shipconf.FormatFluentBit, Env: map[string]string{"ES_HOST": "10.0.0.1", "ES_PW": "pw"}})
	if err != nil {
		t.Fatal(err)
	}
	e := FindEndpoints(c)
	if e.Monitor == nil || e.Monitor.Addr != "127.0.0.1:2021" {
		t.Errorf("monitor %+v", e.Monitor)
	}
	if len(e.UDP) != 1 || e.UDP[0].Port != 5171 || e.UDP[0].Limit != 32767 {
		t.Errorf("udp %+v", e.UDP)
	}
	if len(e.ES) != 1 || e.ES[0].URLs[0] != "https://10.0.0.1:9202" || e.ES[0].Verify || e.ES[0].Password != "pw" || e.ES[0].Sniffs {
		t.Errorf("es %+v", e.ES)
	}
	f := e.Forward[0]
	if !f.RequireAck || f.Servers[0].SharedKey != "abc" || len(f.Unknown) != 1 || f.Servers[0].Addr != "127.0.0.1:24224" {
		t.Errorf("forward with an unset variable: %+v", f)
	}
}
