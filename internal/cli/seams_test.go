package cli

import (
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
)

// parseOnly runs cmd with args; the command's runF captures the options,
// so nothing but flag parsing and checking happens.
func parseOnly(t *testing.T, cmd *cobra.Command, args ...string) error {
	t.Helper()
	cmd.SetArgs(args)
	cmd.SetOut(io.Discard)
	cmd.SetErr(io.Discard)
	return cmd.Execute()
}

func seamGlobals() *Globals {
	return &Globals{IO: IO{In: strings.NewReader(""), Out: io.Discard, Err: io.Discard}, Now: time.Now}
}

func TestForwardProbeFlagsParse(t *testing.T) {
	var got []ForwardProbeOptions
	capture := func(o ForwardProbeOptions) error { got = append(got, o); return nil }
	for _, args := range [][]string{
		{"agg:24224", "--tls-ca", "ca.pem", "--tls-cert", "c.pem", "--tls-key", "k.pem", "--tls-insecure", "--mode", "packed,message"},
		{"agg:24224", "--ca", "ca.pem", "--cert", "c.pem", "--key", "k.pem", "--insecure", "--mode", "packed", "--mode", "message"},
	} {
		if err := parseOnly(t, newForwardProbeCmd(seamGlobals(), capture), args...); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
	}
	if len(got) != 2 {
		t.Fatalf("runF called %d times", len(got))
	}
	for _, o := range got {
		want := ForwardTLS{CA: "ca.pem", Cert: "c.pem", Key: "k.pem", Insecure: true}
		if o.Addr != "agg:24224" || o.CA != want.CA || o.Cert != want.Cert || o.Key != want.Key || !o.Insecure ||
			!reflect.DeepEqual(o.Modes, []string{"packed", "message"}) || o.Tag != "logdoctor.probe" || o.AckTimeout != 10*time.Second {
			t.Fatalf("%+v", o)
		}
	}
	called := false
	err := parseOnly(t, newForwardProbeCmd(seamGlobals(), func(ForwardProbeOptions) error { called = true; return nil }), "agg:24224", "--ack-timeout", "0")
	if err == nil || called {
		t.Fatalf("--ack-timeout 0: err %v, runF called %v", err, called)
	}
}

func TestForwardServeFlagsParse(t *testing.T) {
	var got ForwardServeOptions
	err := parseOnly(t, newForwardServeCmd(seamGlobals(), func(o ForwardServeOptions) error { got = o; return nil }),
		"--ack", "delay=2s", "--close-after", "3", "--hostname", "old-name", "--user", "a:b", "--user", "c:d")
	if err != nil {
		t.Fatal(err)
	}
	if got.Ack != "delay=2s" || got.CloseAfter != 3 || got.Hostname != "old-name" || !reflect.DeepEqual(got.Users, []string{"a:b", "c:d"}) ||
		got.Listen != "127.0.0.1:24224" || !got.Heartbeat {
		t.Fatalf("%+v", got)
	}
}

func TestESFlagsParseTheSameInEveryCommand(t *testing.T) {
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	conn := []string{"--es-user", "u", "--es-password-file", pw, "--es-api-key", "k", "--es-ca", "ca.pem", "--es-insecure"}
	check := func(what string, c ESConn) {
		t.Helper()
		if !reflect.DeepEqual(c.URLs, []string{"http://es:9200"}) || c.User != "u" || c.PasswordFile != pw || c.APIKey != "k" || c.CA != "ca.pem" || !c.Insecure {
			t.Fatalf("%s: %+v", what, c)
		}
	}
	var probe ESProbeOptions
	if err := parseOnly(t, newESProbeCmd(seamGlobals(), func(o ESProbeOptions) error { probe = o; return nil }), append([]string{"http://es:9200"}, conn...)...); err != nil {
		t.Fatal(err)
	}
	check("es probe", probe.Conn.ESConn)
	old := []string{"http://es:9200", "--user", "u", "--password-file", pw, "--api-key", "k", "--ca", "ca.pem", "--insecure"}
	if err := parseOnly(t, newESProbeCmd(seamGlobals(), func(o ESProbeOptions) error { probe = o; return nil }), old...); err != nil {
		t.Fatal(err)
	}
	check("es probe, old spellings", probe.Conn.ESConn)
	// --es is the URL's one spelling in every command; the argument is
	// the old one.
	for _, c := range []struct {
		what string
		cmd  func() (*cobra.Command, *ESConn)
		args []string
	}{
		{"es probe --es", func() (*cobra.Command, *ESConn) {
			return newESProbeCmd(seamGlobals(), func(o ESProbeOptions) error { probe = o; return nil }), &probe.Conn.ESConn
		}, nil},
		{"es dups --es", func() (*cobra.Command, *ESConn) {
			var dups ESDupsOptions
			return newESDupsCmd(seamGlobals(), func(o ESDupsOptions) error { dups = o; return nil }), &dups.Conn.ESConn
		}, []string{"--index", "logs"}},
		{"exporter --es", func() (*cobra.Command, *ESConn) {
			var ex ExporterOptions
			return newExporterCmd(seamGlobals(), func(o ExporterOptions) error { ex = o; return nil }), &ex.ES
		}, nil},
	} {
		cmd, got := c.cmd()
		if err := parseOnly(t, cmd, append(append([]string{"--es", "http://es:9200"}, c.args...), conn...)...); err != nil {
			t.Fatalf("%s: %v", c.what, err)
		}
		check(c.what, *got)
	}
	var dups ESDupsOptions
	if err := parseOnly(t, newESDupsCmd(seamGlobals(), func(o ESDupsOptions) error { dups = o; return nil }), append([]string{"http://es:9200", "--index", "logs"}, conn...)...); err != nil {
		t.Fatal(err)
	}
	check("es dups", dups.Conn.ESConn)
	var pipe *PipelineOptions
	pcmd := newPipelineCmd(seamGlobals(), func(o *PipelineOptions) error { pipe = o; return nil })
	if err := parseOnly(t, pcmd, append([]string{"run", "--es", "http://es:9200"}, conn...)...); err != nil {
		t.Fatal(err)
	}
	check("pipeline run", pipe.ESConn)
	var sm SmokeOptions
	if err := parseOnly(t, newSmokeCmd(seamGlobals(), func(o SmokeOptions) error { sm = o; return nil }), append([]string{"--es", "http://es:9200", "--tls-insecure"}, conn...)...); err != nil {
		t.Fatal(err)
	}
	check("smoke", sm.ESConn)
	// smoke resolves the password file before running.
	if sm.ESPassword != "s3cret" || !sm.ForwardTLS.Insecure || sm.ForwardTLS.CA != "" {
		t.Fatalf("smoke: password %q, TLS %+v", sm.ESPassword, sm.ForwardTLS)
	}
}

func TestSocketsUDPFragESServeFlagsParse(t *testing.T) {
	var so SocketsOptions
	if err := parseOnly(t, newSocketsCmd(seamGlobals(), func(o SocketsOptions) error { so = o; return nil }),
		"--peer", "es", "--state", "CLOSE_WAIT,TIME_WAIT", "--by", "process", "--send-q", "4096"); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(so.Peers, []string{"es"}) || !reflect.DeepEqual(so.States, []string{"CLOSE_WAIT", "TIME_WAIT"}) ||
		so.By != "process" || so.Thresholds.SendQ != 4096 || so.ProcRoot != "/proc" || so.Now == nil {
		t.Fatalf("%+v", so)
	}
	var uo UDPFragOptions
	if err := parseOnly(t, newUDPFragCmd(seamGlobals(), func(o UDPFragOptions) error { uo = o; return nil }),
		"--port", "5160", "--port", "5170", "--duration", "2s", "-i", "lo"); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(uo.Ports, []uint16{5160, 5170}) || uo.Duration != 2*time.Second || !reflect.DeepEqual(uo.Interfaces, []string{"lo"}) {
		t.Fatalf("%+v", uo)
	}
	var eo ESServeOptions
	if err := parseOnly(t, newESServeCmd(seamGlobals(), func(o ESServeOptions) error { eo = o; return nil }),
		"--nodes", "3", "--reject-rate", "0.25"); err != nil {
		t.Fatal(err)
	}
	if eo.Nodes != 3 || eo.RejectRate != 0.25 || eo.Listen != "127.0.0.1:9200" {
		t.Fatalf("%+v", eo)
	}
}

func TestConfigCheckFlagsParse(t *testing.T) {
	var got []ConfigCheckOptions
	capture := func(o ConfigCheckOptions) error { got = append(got, o); return nil }
	t.Setenv("LOGDOCTOR_SEAM_TEST", "from-env")
	if err := parseOnly(t, newConfigCheckCmd(seamGlobals(), capture), "a.conf", "b.conf", "--format", "fluent-bit", "--env", "ES_HOST=es",
		"--use-env", "--mtu", "1460", "--es-version", "7.17", "--es-max-content-length", "10mb"); err != nil {
		t.Fatal(err)
	}
	if err := parseOnly(t, newConfigCheckCmd(seamGlobals(), capture), "c.conf"); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("runF called %d times", len(got))
	}
	o := got[0]
	if !reflect.DeepEqual(o.Files, []string{"a.conf", "b.conf"}) || o.Format != "fluentbit" || o.Env["ES_HOST"] != "es" ||
		o.Env["LOGDOCTOR_SEAM_TEST"] != "from-env" || o.MTU != 1460 || o.ESVersion == nil || o.ESMaxContentLength != 10<<20 ||
		o.Interfaces == nil || o.Now == nil {
		t.Fatalf("%+v", o)
	}
	if d := got[1]; d.Format != "" || len(d.Env) != 0 || d.MTU != 0 || d.ESVersion != nil || d.ESMaxContentLength != 0 {
		t.Fatalf("defaults: %+v", d)
	}
	called := false
	err := parseOnly(t, newConfigCheckCmd(seamGlobals(), func(ConfigCheckOptions) error { called = true; return nil }), "a.conf", "--env", "novalue")
	if err == nil || called {
		t.Fatalf("--env novalue: err %v, runF called %v", err, called)
	}
}

func TestDoctorFlagsParse(t *testing.T) {
	var got []DoctorOptions
	capture := func(o DoctorOptions) error { got = append(got, o); return nil }
	if err := parseOnly(t, newDoctorCmd(seamGlobals(), capture)); err != nil {
		t.Fatal(err)
	}
	if err := parseOnly(t, newDoctorCmd(seamGlobals(), capture), "--pid", "42", "--shipper", "fluent-bit", "--config", "fb.conf",
		"--interval", "2s", "--step-timeout", "3s", "--no-probes", "--proc-root", "/host/proc", "--source", "proc"); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("runF called %d times", len(got))
	}
	if d := got[0]; d.PID != 0 || d.Shipper != "" || d.Interval != 5*time.Second || d.StepTimeout != 10*time.Second ||
		d.NoProbes || d.ProcRoot != "/proc" || d.Source != sourceAuto {
		t.Fatalf("defaults: %+v", d)
	}
	if o := got[1]; o.PID != 42 || o.Shipper != "fluent-bit" || o.ConfigFile != "fb.conf" || o.Interval != 2*time.Second ||
		o.StepTimeout != 3*time.Second || !o.NoProbes || o.ProcRoot != "/host/proc" || o.Source != sourceProc {
		t.Fatalf("%+v", o)
	}
	called := false
	if err := parseOnly(t, newDoctorCmd(seamGlobals(), func(DoctorOptions) error { called = true; return nil }), "--interval", "0"); err == nil || called {
		t.Fatalf("--interval 0: err %v, runF called %v", err, called)
	}
}

func TestExporterFlagsParse(t *testing.T) {
	var got []ExporterOptions
	capture := func(o ExporterOptions) error { got = append(got, o); return nil }
	t.Setenv("LOGDOCTOR_FORWARD_SHARED_KEY", "env-key")
	if err := parseOnly(t, newExporterCmd(seamGlobals(), capture), "--interval", "5s"); err != nil {
		t.Fatal(err)
	}
	if err := parseOnly(t, newExporterCmd(seamGlobals(), capture), "--listen", "127.0.0.1:0", "--interval", "30s", "--timeout", "20s",
		"--peer", "es", "--udp-port", "5160,5170", "--shipper-pid", "fb=7", "--discover=false", "--forward-probe", "127.0.0.1:24224",
		"--forward-shared-key", "k", "--es-probe", "http://127.0.0.1:9200", "--es-user", "u", "--es-insecure"); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("runF called %d times", len(got))
	}
	// --timeout follows a shorter --interval unless given.
	if d := got[0]; d.Listen != "127.0.0.1:9731" || d.Interval != 5*time.Second || d.Timeout != 5*time.Second ||
		d.ProbeInterval != time.Minute || d.ProcRoot != "/proc" || !d.Discover || d.ForwardSharedKey != "env-key" ||
		d.ForwardAckTimeout != 5*time.Second || d.ForwardTag != "logdoctor.exporter" || d.MaxPeers != 100 {
		t.Fatalf("defaults: %+v", d)
	}
	o := got[1]
	if o.Listen != "127.0.0.1:0" || o.Interval != 30*time.Second || o.Timeout != 20*time.Second || !reflect.DeepEqual(o.Peers, []string{"es"}) ||
		!reflect.DeepEqual(o.UDPPorts, []int{5160, 5170}) || !reflect.DeepEqual(o.Shippers, []string{"fb=7"}) || o.Discover ||
		!reflect.DeepEqual(o.ForwardProbes, []string{"127.0.0.1:24224"}) || o.ForwardSharedKey != "k" ||
		!reflect.DeepEqual(o.ES.URLs, []string{"http://127.0.0.1:9200"}) || o.ES.User != "u" || !o.ES.Insecure {
		t.Fatalf("%+v", o)
	}
	// --es-probe is --es's old name.
	if err := parseOnly(t, newExporterCmd(seamGlobals(), capture), "--es-probe", "http://a:9200", "--es", "http://b:9200,http://c:9200"); err != nil {
		t.Fatal(err)
	}
	if u := got[2].ES.URLs; !reflect.DeepEqual(u, []string{"http://a:9200", "http://b:9200", "http://c:9200"}) {
		t.Fatalf("--es-probe and --es: %v", u)
	}
	called := false
	if err := parseOnly(t, newExporterCmd(seamGlobals(), func(ExporterOptions) error { called = true; return nil }), "--es-probe", "ftp://x"); err == nil || called {
		t.Fatalf("--es-probe ftp://x: err %v, runF called %v", err, called)
	}
}
