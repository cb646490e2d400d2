package configcheck

import (
	"strings"

	"github.com/logdoctor/logdoctor/pkg/shipconf"
)

// Readings of a configuration that `logdoctor doctor` puts next to live
// evidence. They read the settings exactly as the rules above do, so a
// finding and a diagnosis never disagree about a value.

// UDPInput returns the largest datagram a UDP input accepts, the setting
// it comes from and its bind address; prm is nil when in is not a UDP
// input (or the limit is not known).
func UDPInput(c *shipconf.Config, in *shipconf.Plugin) (limit int64, prm *shipconf.Param, bind string) {
	ck := &checker{c: c}
	return ck.udpLimit(in)
}

// BulkSize returns the largest bulk request an Elasticsearch output sends
// and the setting that sizes it (nil when unknown).
func BulkSize(c *shipconf.Config, o *shipconf.Plugin) (int64, *shipconf.Param) {
	if c.Shipper == shipconf.FluentBit {
		return fbChunkSize, &shipconf.Param{Key: "chunk size", Name: "chunk size", Value: "2048000", State: shipconf.Default, Pos: o.Pos}
	}
	ck := &checker{c: c}
	return ck.fdBulkSize(o)
}

// BufferLimit returns the most a Fluentd output buffers before it refuses
// events, and where that number comes from.
func BufferLimit(c *shipconf.Config, o *shipconf.Plugin) (int64, string) {
	return fdTotalLimit(c, o, bufferSec(o.Buffer()))
}

// MemoryBuffer reports whether a Fluentd output buffers in memory, with
// the setting that says so (the output's own line when it has no
// <buffer>). It is false for outputs that do not buffer.
func MemoryBuffer(c *shipconf.Config, o *shipconf.Plugin) (bool, *shipconf.Param) {
	if c.Shipper == shipconf.FluentBit {
		return false, nil
	}
	buf, ok := fdBufferOf(o)
	if !ok {
		return false, nil
	}
	typ := c.Setting(o, bufferSec(buf), "@type")
	if typ == nil || typ.State == shipconf.Unknown || typ.Value != "memory" {
		return false, typ
	}
	if buf == nil {
		return true, &shipconf.Param{Key: "<buffer>", Name: "<buffer>", Value: "memory (no <buffer> section)", State: shipconf.Default, Pos: o.Pos}
	}
	return true, typ
}

// Sniffs reports whether a Fluentd Elasticsearch output replaces its
// configured hosts with the addresses _nodes/http publishes, and the
// setting that makes it do so.
func Sniffs(c *shipconf.Config, o *shipconf.Plugin) (bool, *shipconf.Param) {
	if c.Shipper == shipconf.FluentBit || !o.IsElasticsearch() {
		return false, nil
	}
	if s := o.Param("sniffer_class_name"); s != nil && (s.State == shipconf.Unknown || strings.HasSuffix(s.Value, "SimpleSniffer")) {
		return false, s
	}
	ck := &checker{c: c}
	for _, name := range []string{"reload_connections", "reload_on_failure"} {
		p := c.Setting(o, nil, name)
		if p != nil && p.State != shipconf.Unknown && ck.bool(p.Value) {
			return true, p
		}
	}
	return false, c.Setting(o, nil, "reload_connections")
}

// IsSecretName reports whether a parameter named name holds a credential.
func IsSecretName(name string) bool { return isSecretName(name) }
