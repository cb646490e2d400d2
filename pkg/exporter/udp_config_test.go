package exporter

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/logdoctor/logdoctor/pkg/configcheck"
)

// TestUDPSourceDrops overflows the receive buffer of a real UDP socket on
// loopback that never reads: its port's receive buffer errors and queue
// show it, and a port nothing is bound to reports 0 sockets and no
// counter.
func TestUDPSourceDrops(t *testing.T) {
	rx, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer rx.Close()
	if err := rx.SetReadBuffer(4096); err != nil {
		t.Fatal(err)
	}
	port := uint16(rx.LocalAddr().(*net.UDPAddr).Port)
	free, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	freePort := uint16(free.LocalAddr().(*net.UDPAddr).Port)
	free.Close()

	tx, err := net.DialUDP("udp4", nil, rx.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	payload := make([]byte, 1200)
	for range 200 { // far more than a 4 KiB buffer holds
		if _, err := tx.Write(payload); err != nil {
			t.Fatal(err)
		}
	}
	e := New(Options{})
	e.Add(NewUDP(UDPConfig{Ports: []uint16{port, freePort}}), Schedule{Interval: time.Second})
	e.RunOnce(context.Background())
	mfs := gather(t, e)
	p := strconv.Itoa(int(port))
	if v := mustValue(t, mfs, "logdoctor_udp_receive_buffer_errors_total", map[string]string{"port": p}); v < 100 {
		t.Errorf("receive buffer errors on port %s = %v, want most of the 200 datagrams", p, v)
	}
	if v := mustValue(t, mfs, "logdoctor_udp_receive_queue_bytes", map[string]string{"port": p}); v == 0 {
		t.Errorf("receive queue of the unread socket = %v", v)
	}
	if v := mustValue(t, mfs, "logdoctor_udp_sockets", map[string]string{"port": p}); v != 1 {
		t.Errorf("sockets on %s = %v", p, v)
	}
	fp := strconv.Itoa(int(freePort))
	if v := mustValue(t, mfs, "logdoctor_udp_sockets", map[string]string{"port": fp}); v != 0 {
		t.Errorf("sockets on the free port = %v", v)
	}
	if _, ok := value(mfs, "logdoctor_udp_receive_buffer_errors_total", map[string]string{"port": fp}); ok {
		t.Error("a port without a socket has a drop counter")
	}
	if v := mustValue(t, mfs, "logdoctor_kernel_udp_errors_total", map[string]string{"ip": "4", "kind": "receive_buffer"}); v < 100 {
		t.Errorf("the namespace's RcvbufErrors = %v", v)
	}
	text, _ := exposition(t, promRegistry(e))
	promtoolCheck(t, text)
}

// TestUDPSourceNoProc: a proc tree without the counters is a failed run,
// not an empty success.
func TestUDPSourceNoProc(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "self", "net"), 0o755); err != nil {
		t.Fatal(err)
	}
	e := New(Options{})
	e.Add(NewUDP(UDPConfig{ProcRoot: dir}), Schedule{Interval: time.Second})
	e.RunOnce(context.Background())
	mfs := gather(t, e)
	if v := mustValue(t, mfs, "logdoctor_source_errors_total", map[string]string{"source": "udp", "kind": "error"}); v != 1 {
		t.Errorf("errors = %v", v)
	}
}

// TestConfigSourceReloadsOnChange: the findings follow the file: read
// once, not again while it is unchanged, again when it changes.
func TestConfigSourceReloadsOnChange(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "fluent.conf")
	noAck := "<match **>\n  @type forward\n  <server>\n    host 127.0.0.1\n    port 24224\n  </server>\n  <buffer>\n    @type file\n    path " + dir + "/buf\n  </buffer>\n</match>\n"
	write := func(s string, mod time.Time) {
		t.Helper()
		if err := os.WriteFile(conf, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(conf, mod, mod); err != nil {
			t.Fatal(err)
		}
	}
	t0 := time.Now().Add(-time.Hour)
	write(noAck, t0)
	e := New(Options{})
	e.Add(NewConfig(ConfigConfig{Shipper: "fluentd", Main: conf, Check: configcheck.Options{MTU: 1500}}), Schedule{Interval: time.Second})
	e.RunOnce(context.Background())
	e.RunOnce(context.Background())
	mfs := gather(t, e)
	if v := mustValue(t, mfs, "logdoctor_config_reloads_total", map[string]string{"config": conf}); v != 1 {
		t.Fatalf("reloads = %v after two runs over an unchanged file", v)
	}
	if _, ok := value(mfs, "logdoctor_finding", map[string]string{"id": configcheck.FindingForwardNoAck, "target": conf + ":1", "shipper": "fluentd"}); !ok {
		t.Fatalf("no config.forward_no_ack at %s:1: %v", conf, mfs["logdoctor_finding"])
	}
	// The fix: require_ack_response, and the file is newer.
	fixed := "<match **>\n  @type forward\n  require_ack_response true\n  <server>\n    host 127.0.0.1\n    port 24224\n  </server>\n  <buffer>\n    @type file\n    path " + dir + "/buf\n  </buffer>\n</match>\n"
	write(fixed, t0.Add(time.Minute))
	e.RunOnce(context.Background())
	mfs = gather(t, e)
	if v := mustValue(t, mfs, "logdoctor_config_reloads_total", map[string]string{"config": conf}); v != 2 {
		t.Fatalf("reloads = %v after the file changed", v)
	}
	if _, ok := value(mfs, "logdoctor_finding", map[string]string{"id": configcheck.FindingForwardNoAck}); ok {
		t.Fatal("config.forward_no_ack still holds after the fix")
	}
	// The file disappears: the source fails until it is back.
	if err := os.Remove(conf); err != nil {
		t.Fatal(err)
	}
	e.RunOnce(context.Background())
	if v := mustValue(t, gather(t, e), "logdoctor_source_up", map[string]string{"source": "config"}); v != 0 {
		t.Fatalf("up = %v with the file gone", v)
	}
	write(noAck, t0.Add(2*time.Minute))
	e.RunOnce(context.Background())
	if _, ok := value(gather(t, e), "logdoctor_finding", map[string]string{"id": configcheck.FindingForwardNoAck}); !ok {
		t.Fatal("the finding did not come back with the file")
	}
}

// TestShipperSource maps each shipper's names to the same metrics: a
// Fluentd output whose limit is known, one whose is not (the usage comes
// from monitor_agent's free-space ratio), and Fluent Bit's input storage
// and output counters.
func TestShipperSource(t *testing.T) {
	fd := []ShipperPlugin{
		{ID: "out_es", Category: "output", LimitBytes: 1000, Values: map[string]float64{
			"buffer_total_queued_size": 250, "buffer_queue_length": 3, "retry_count": 4, "rollback_count": 2, "write_count": 9, "emit_records": 120}},
		{ID: "out_fwd", Category: "output", Values: map[string]float64{"buffer_total_queued_size": 10, "buffer_available_buffer_space_ratios": 75}},
		{ID: "in_tail", Category: "input", Values: map[string]float64{"emit_records": 500}},
	}
	fb := []ShipperPlugin{
		// /api/v2/metrics names, plus /api/v1/storage's Mem_Buf_Limit.
		{ID: "tail.0", Category: "input", Values: map[string]float64{"fluentbit_input_records_total": 80, "fluentbit_input_storage_memory_bytes": 100,
			"fluentbit_input_storage_chunks": 2, "storage_mem_limit_bytes": 400}},
		{ID: "es.0", Category: "output", Values: map[string]float64{"fluentbit_output_retries_total": 5, "fluentbit_output_errors_total": 1,
			"fluentbit_output_dropped_records_total": 7, "fluentbit_output_proc_records_total": 70, "fluentbit_output_chunk_available_capacity_percent": 40}},
		// /api/v1/metrics names only.
		{ID: "forward.1", Category: "output", Values: map[string]float64{"retries": 2, "errors": 3, "dropped_records": 4, "proc_records": 5}},
	}
	e := New(Options{})
	e.Add(NewShipper(ShipperConfig{Shipper: "fluentd", Kind: KindFluentd,
		Read: func(context.Context) ([]ShipperPlugin, error) { return fd, nil }}), Schedule{Interval: time.Second})
	e.Add(NewShipper(ShipperConfig{Shipper: "fluent-bit", Kind: KindFluentBit,
		Read: func(context.Context) ([]ShipperPlugin, error) { return fb, nil }}), Schedule{Interval: time.Second})
	e.RunOnce(context.Background())
	mfs := gather(t, e)
	for _, c := range []struct {
		name, shipper, plugin string
		want                  float64
	}{
		{"logdoctor_shipper_buffer_queued_bytes", "fluentd", "out_es", 250},
		{"logdoctor_shipper_buffer_limit_bytes", "fluentd", "out_es", 1000},
		{"logdoctor_shipper_buffer_usage_ratio", "fluentd", "out_es", 0.25},
		{"logdoctor_shipper_buffer_usage_ratio", "fluentd", "out_fwd", 0.25},
		{"logdoctor_shipper_buffer_queue_chunks", "fluentd", "out_es", 3},
		{"logdoctor_shipper_output_retries_total", "fluentd", "out_es", 4},
		{"logdoctor_shipper_output_errors_total", "fluentd", "out_es", 2},
		{"logdoctor_shipper_output_writes_total", "fluentd", "out_es", 9},
		{"logdoctor_shipper_input_records_total", "fluentd", "in_tail", 500},
		{"logdoctor_shipper_buffer_queued_bytes", "fluent-bit", "tail.0", 100},
		{"logdoctor_shipper_buffer_usage_ratio", "fluent-bit", "tail.0", 0.25},
		{"logdoctor_shipper_buffer_usage_ratio", "fluent-bit", "es.0", 0.6},
		{"logdoctor_shipper_input_records_total", "fluent-bit", "tail.0", 80},
		{"logdoctor_shipper_output_retries_total", "fluent-bit", "es.0", 5},
		{"logdoctor_shipper_output_dropped_records_total", "fluent-bit", "es.0", 7},
		{"logdoctor_shipper_output_records_total", "fluent-bit", "es.0", 70},
		{"logdoctor_shipper_buffer_limit_bytes", "fluent-bit", "tail.0", 400},
		{"logdoctor_shipper_output_retries_total", "fluent-bit", "forward.1", 2},
		{"logdoctor_shipper_output_errors_total", "fluent-bit", "forward.1", 3},
		{"logdoctor_shipper_output_dropped_records_total", "fluent-bit", "forward.1", 4},
		{"logdoctor_shipper_output_records_total", "fluent-bit", "forward.1", 5},
	} {
		got, ok := value(mfs, c.name, map[string]string{"shipper": c.shipper, "plugin_id": c.plugin})
		if !ok || got < c.want-1e-9 || got > c.want+1e-9 {
			t.Errorf("%s{shipper=%q,plugin_id=%q} = %v (found %v), want %v", c.name, c.shipper, c.plugin, got, ok, c.want)
		}
	}
	if _, ok := value(mfs, "logdoctor_shipper_output_retries_total", map[string]string{"plugin_id": "in_tail"}); ok {
		t.Error("an input has output counters")
	}
	text, _ := exposition(t, promRegistry(e))
	promtoolCheck(t, text)
}
