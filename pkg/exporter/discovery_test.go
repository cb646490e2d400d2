package exporter

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/logdoctor/logdoctor/internal/testenv"
	"github.com/logdoctor/logdoctor/pkg/configcheck"
	"github.com/logdoctor/logdoctor/pkg/sockstat"
)

// TestDiscoveredShipperUsesItsOwnMTU: a discovered shipper's
// configuration is checked against the MTU of its own network namespace,
// not the exporter's (a pod's veth is often smaller than the node's
// interface). The stand-in Fluent Bit runs in a namespace whose veth has
// MTU 1280 and accepts UDP messages up to 2047 bytes: above 1252, so
// config.udp_message_size holds there, while the exporter's own MTU (9000
// here) would hide it.
func TestDiscoveredShipperUsesItsOwnMTU(t *testing.T) {
	nsA, nsB := testenv.NewNetns(t), testenv.NewNetns(t)
	testenv.Veth(t, nsA, "eth0", "", nsB, "eth0", "", 1280)

	dir := t.TempDir()
	bin := filepath.Join(dir, "fluent-bit")
	build := exec.Command("go", "build", "-o", bin, "../doctor/testdata/standin")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build standin: %v\n%s", err, out)
	}
	conf := filepath.Join(dir, "fluent-bit.conf")
	if err := os.WriteFile(conf, []byte("[INPUT]\n    Name       udp\n    Listen     0.0.0.0\n    Port       5170\n    Chunk_Size 2\n[OUTPUT]\n    Name  null\n    Match *\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd, line := nsA.Start(t, bin, "-c", conf)
	if line != "ready" {
		t.Fatalf("stand-in said %q", line)
	}
	pid := strconv.Itoa(cmd.Process.Pid) // ip netns exec execs it

	e := New(Options{})
	d := NewDiscovery(DiscoveryConfig{Engine: e, ProcRoot: "/proc", Self: os.Getpid(), Schedule: Schedule{Interval: time.Hour, Timeout: 10 * time.Second},
		OpenTable: func(int) (TableReader, func(), error) {
			return func() ([]sockstat.Socket, error) { return nil, nil }, func() {}, nil
		},
		Check: configcheck.Options{MTU: 9000, MTUSource: "flag"}})
	e.Add(d, Schedule{Interval: time.Hour, Timeout: 10 * time.Second})
	defer d.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	e.RunOnce(ctx) // discovery adds the shipper's sources
	e.RunOnce(ctx) // which run now

	mfs := gather(t, e)
	var name string
	for _, m := range mfs["logdoctor_shipper_info"].GetMetric() {
		ls := map[string]string{}
		for _, l := range m.GetLabel() {
			ls[l.GetName()] = l.GetValue()
		}
		if ls["pid"] == pid && ls["config"] == conf {
			name = ls["shipper"]
		}
	}
	if name == "" {
		t.Fatalf("stand-in (pid %s) not discovered with %s", pid, conf)
	}
	if v, ok := value(mfs, "logdoctor_finding", map[string]string{"id": configcheck.FindingUDPMessageSize, "shipper": name, "target": conf + ":5"}); !ok || v != 1 {
		t.Errorf("%s: no config.udp_message_size at the namespace's MTU 1280 (the exporter's 9000 hides it)", name)
	}
}
