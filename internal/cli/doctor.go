package cli

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/logdoctor/logdoctor/internal/buildinfo"
	"github.com/logdoctor/logdoctor/pkg/doctor"
	"github.com/logdoctor/logdoctor/pkg/report"
	"github.com/logdoctor/logdoctor/pkg/sockstat"
)

// DoctorOptions are the flags of `logdoctor doctor`.
type DoctorOptions struct {
	doctor.Options
	Source   string // --source for the socket table
	OpenDiag OpenDiag
}

// newDoctorCmd builds `doctor`; runF, when set, gets the parsed options
// instead of the diagnosis running.
func newDoctorCmd(g *Globals, runF func(DoctorOptions) error) *cobra.Command {
	o := DoctorOptions{Options: doctor.Options{ProcRoot: doctor.DefaultProcRoot, Interval: doctor.DefaultInterval, StepTimeout: doctor.DefaultStepTimeout}, Source: sourceAuto}
	var shipper string
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Attach to a running Fluentd or Fluent Bit and say which setting causes the symptom",
		Long: `doctor finds a running Fluentd (supervisor or worker) or Fluent Bit (--pid, or
every one in /proc), reads its configuration through /proc/PID/root with the
environment of /proc/PID/environ (secrets are never printed), looks at its
sockets in its network namespace with the configured endpoints as peers,
samples its own metrics (monitor_agent, Fluent Bit's HTTP server) five times over
--interval (the first and the last make the findings) and its UDP counters at
its start and end, probes every Elasticsearch and
forward endpoint the configuration names with the configuration's own hosts,
credentials and TLS settings, from inside the shipper's namespace where it may
enter it, and joins the evidence into one ranked diagnosis naming the file and
line to change. Every step is time-bounded; a step that cannot run is reported
as skipped with the reason.

The probes connect to the configured endpoints and send one canary chunk (tag
logdoctor.doctor) to each forward server; --no-probes leaves them out. Entering
the shipper's network namespace needs CAP_SYS_ADMIN (root on a node, or
kubectl debug --profile=sysadmin); without it doctor says it reached addresses
from its own namespace.`,
		Example: `  logdoctor doctor
  logdoctor doctor --pid $(pgrep -f 'fluentd.*under-supervisor' | head -1)
  logdoctor doctor --shipper fluent-bit --interval 10s --html doctor.html
  kubectl debug -it POD --image=logdoctor --target=fluentd -- /logdoctor doctor`,
		Args: cobra.NoArgs,
		RunE: g.run(func(cmd *cobra.Command, _ []string) error {
			o.Shipper = doctor.Kind(shipper)
			if runF != nil {
				return runF(o)
			}
			r, err := runDoctor(cmd.Context(), g.Now, o)
			if err != nil {
				return err
			}
			rules := append(append([]report.Rule{}, doctor.Rules...), configRules()...)
			g.renderer.SARIF = report.SARIFInfo{Version: buildinfo.Version, InformationURI: "https://github.com/logdoctor/logdoctor", Rules: rules}
			return g.Emit(r)
		}),
	}
	f := cmd.Flags()
	intVar(f, &o.PID, "pid", 0, 0, math.MaxInt32, "a process id (0: every shipper found)", "diagnose this process: Fluent Bit, or a Fluentd supervisor or worker (0: every shipper in --proc-root)")
	enumVar(f, &shipper, "shipper", "", []string{"", string(doctor.Fluentd), string(doctor.FluentBit)}, "only this kind: fluentd or fluent-bit (with --pid: take the process for this kind)")
	f.StringVar(&o.ConfigFile, "config", "", "read this configuration file (on this host) instead of discovering it")
	durVar(f, &o.Interval, "interval", o.Interval, time.Millisecond, "a duration of 1ms or more, like 5s", "time between the first and the last sample of metrics, sockets and counters")
	durVar(f, &o.StepTimeout, "step-timeout", o.StepTimeout, time.Millisecond, "a duration of 1ms or more, like 10s", "bound of each step (reading the configuration, a sample, each probe)")
	f.BoolVar(&o.NoProbes, "no-probes", false, "do not connect to the configured Elasticsearch and forward endpoints")
	f.StringVar(&o.ProcRoot, "proc-root", o.ProcRoot, "proc tree to read (a node's /proc mounted in a container)")
	enumVar(f, &o.Source, "source", sourceAuto, []string{sourceAuto, sourceNetlink, sourceProc}, "where to read the socket table: netlink (with tcp_info), proc, or auto")
	return cmd
}

// runDoctor checks the files the flags name, wires the socket source and
// runs the diagnosis.
func runDoctor(ctx context.Context, now func() time.Time, o DoctorOptions) (*report.Report, error) {
	if _, err := os.Stat(o.ProcRoot); err != nil {
		return nil, fmt.Errorf("--proc-root: %w", err)
	}
	if o.ConfigFile != "" {
		st, err := os.Stat(o.ConfigFile)
		if err != nil {
			return nil, fmt.Errorf("--config: %w", err)
		}
		if st.IsDir() {
			return nil, fmt.Errorf("--config %s: is a directory", o.ConfigFile)
		}
	}
	o.SelfPID = os.Getpid()
	o.Now = now
	procRoot, source, open := o.ProcRoot, o.Source, o.OpenDiag
	o.Sockets = func(_ context.Context, pid int) ([]sockstat.Socket, sockstat.Sources, error) {
		src, err := openTableSource(SocketsOptions{ProcRoot: procRoot, PID: pid, Source: source, OpenDiag: open},
			filepath.Join(procRoot, strconv.Itoa(pid)))
		if err != nil {
			return nil, sockstat.Sources{}, err
		}
		defer src.close()
		return src.read(nil)
	}
	started := now()
	res, fs, err := doctor.Run(ctx, o.Options)
	switch {
	case errors.Is(err, doctor.ErrNoProcess):
		return nil, fmt.Errorf("--pid %d: %w", o.PID, doctor.ErrNoProcess)
	case errors.Is(err, doctor.ErrNotShipper):
		return nil, fmt.Errorf("--pid: %w", err)
	case err != nil:
		return nil, err
	}
	r := report.New("doctor", started)
	r.Data = res
	r.Add(fs...)
	r.Finish(now())
	return r, nil
}
