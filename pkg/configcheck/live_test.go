package configcheck

import (
	"testing"

	"github.com/logdoctor/logdoctor/pkg/shipconf"
)

func TestLiveReadings(t *testing.T) {
	fd := `<source>
  @type udp
  port 5160
  bind 0.0.0.0
  <parse>
    @type json
  </parse>
</source>
<match a.**>
  @type elasticsearch
  host 127.0.0.1
  <buffer>
    @type memory
    chunk_limit_size 4m
    total_limit_size 64m
  </buffer>
</match>
<match b.**>
  @type elasticsearch
  reload_connections false
  <buffer>
    @type file
    path /tmp/b
  </buffer>
</match>
<match c.**>
  @type forward
  <server>
    host 127.0.0.1
  </server>
</match>
`
	c, err := shipconf.Parse("fluent.conf", []byte(fd), shipconf.Options{Format: shipconf.FormatFluentd})
	if err != nil {
		t.Fatal(err)
	}
	outs := c.Outputs()
	if n, prm := BulkSize(c, outs[0]); n != 4<<20 || prm.Pos.Line != 14 {
		t.Errorf("bulk %d %+v", n, prm)
	}
	if n, from := BufferLimit(c, outs[0]); n != 64<<20 || from != "total_limit_size" {
		t.Errorf("limit %d %s", n, from)
	}
	if mem, prm := MemoryBuffer(c, outs[0]); !mem || prm.Pos.Line != 13 {
		t.Errorf("memory %v %+v", mem, prm)
	}
	if mem, _ := MemoryBuffer(c, outs[1]); mem {
		t.Error("file buffer taken for memory")
	}
	if mem, prm := MemoryBuffer(c, outs[2]); !mem || prm.Key != "<buffer>" || prm.Pos.Line != 26 {
		t.Errorf("forward without <buffer>: %v %+v", mem, prm)
	}
	if s, prm := Sniffs(c, outs[0]); !s || prm.Key != "reload_connections" || prm.State != shipconf.Default {
		t.Errorf("sniffs %v %+v", s, prm)
	}
	if s, prm := Sniffs(c, outs[1]); s || prm.Pos.Line != 20 {
		t.Errorf("reload_connections false: %v %+v", s, prm)
	}
	if n, prm, bind := UDPInput(c, c.Inputs()[0]); n != 4096 || prm.State != shipconf.Default || bind != "0.0.0.0" {
		t.Errorf("udp %d %+v %s", n, prm, bind)
	}
	if !IsSecretName("password") || IsSecretName("password_file") {
		t.Error("IsSecretName")
	}

	fb := "[INPUT]\n    Name udp\n    Chunk_Size 2\n[OUTPUT]\n    Name es\n    Match *\n"
	c, err = shipconf.Parse("fluent-bit.conf", []byte(fb), shipconf.Options{Format: shipconf.FormatFluentBit})
	if err != nil {
		t.Fatal(err)
	}
	if n, prm, _ := UDPInput(c, c.Inputs()[0]); n != 2047 || prm.Pos.Line != 3 {
		t.Errorf("fluent bit udp %d %+v", n, prm)
	}
	if n, _ := BulkSize(c, c.Outputs()[0]); n != fbChunkSize {
		t.Errorf("fluent bit bulk %d", n)
	}
	if s, _ := Sniffs(c, c.Outputs()[0]); s {
		t.Error("Fluent Bit does not sniff")
	}
}
