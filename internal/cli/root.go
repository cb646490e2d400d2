// Package cli is logdoctor's command layer: it parses flags into one Options
// struct per command, runs the command's run function, and renders the
// resulting report last. It is the only package that writes to stdout and
// stderr.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/logdoctor/logdoctor/internal/buildinfo"
	"github.com/logdoctor/logdoctor/pkg/report"
)

// ExitCode is the process exit status, as documented in docs/README.md.
type ExitCode int

const (
	ExitOK       ExitCode = 0 // healthy: no finding at or above --fail-on
	ExitError    ExitCode = 1 // could not run
	ExitUsage    ExitCode = 2 // bad flags or arguments
	ExitFindings ExitCode = 3 // a finding at or above --fail-on
)

// IO is where a command reads and writes; tests pass buffers.
type IO struct {
	In     io.Reader
	Out    io.Writer
	Err    io.Writer
	OutTTY bool // stdout is a terminal: boxed tables and progress lines
}

// SystemIO is the process's standard streams.
func SystemIO() IO {
	return IO{In: os.Stdin, Out: os.Stdout, Err: os.Stderr, OutTTY: term.IsTerminal(int(os.Stdout.Fd()))}
}

// UsageError marks a mistake in how logdoctor was called (exit 2).
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// usageErrorf builds a UsageError.
func usageErrorf(format string, a ...any) error {
	return &UsageError{Err: fmt.Errorf(format, a...)}
}

// Globals holds the global flags and what the run has emitted so far.
type Globals struct {
	IO     IO
	Now    func() time.Time
	output string
	failOn string

	renderer report.Renderer
	policy   report.FailOn
	worst    report.Severity
	started  bool // a command's RunE began: errors after this are run errors, not usage errors
}

// Emit renders one report and remembers its worst severity for the exit
// code. Commands that sample (--watch) call it once per sample.
func (g *Globals) Emit(r *report.Report) error {
	if w := r.Worst(); w > g.worst {
		g.worst = w
	}
	return g.renderer.Render(g.IO.Out, r)
}

// JSON reports whether -o json was chosen; progress output stays silent then.
func (g *Globals) JSON() bool { return g.renderer.Format == report.FormatJSON }

// Progress writes a transient status line to stderr when a person is
// watching a terminal and not asking for JSON.
func (g *Globals) Progress(format string, a ...any) {
	if g.JSON() || !g.IO.OutTTY {
		return
	}
	fmt.Fprintf(g.IO.Err, "\r"+format, a...)
}

// run wraps a command's RunE so that errors from inside it count as run
// errors (exit 1) while cobra's own flag and argument errors stay usage
// errors (exit 2).
func (g *Globals) run(fn func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		g.started = true
		return fn(cmd, args)
	}
}

// NewRootCmd builds the command tree around g.
func NewRootCmd(g *Globals) *cobra.Command {
	root := &cobra.Command{
		Use:   "logdoctor",
		Short: "Find out why logs vanish, duplicate or stall between a shipper and Elasticsearch",
		Long: `logdoctor reads the kernel's view of sockets, watches the wire, and speaks the
Fluentd forward and Elasticsearch protocols to tell why logs go missing, arrive
twice or stall. Exit codes: 0 healthy, 1 could not run, 2 usage error,
3 a finding at or above --fail-on.`,
		Version:       fmt.Sprintf("%s (commit %s)", buildinfo.Version, buildinfo.Commit),
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageErrorf("unknown command %q", args[0])
			}
			return cmd.Help()
		},
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			f, err := report.ParseFormat(g.output)
			if err != nil {
				return &UsageError{Err: err}
			}
			p, err := report.ParseFailOn(g.failOn)
			if err != nil {
				return &UsageError{Err: err}
			}
			g.renderer = report.Renderer{Format: f, TTY: g.IO.OutTTY}
			g.policy = p
			return nil
		},
	}
	root.SetIn(g.IO.In)
	root.SetOut(g.IO.Out)
	root.SetErr(g.IO.Err)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return &UsageError{Err: err} })
	root.PersistentFlags().StringVarP(&g.output, "output", "o", "table", "output format: table or json")
	root.PersistentFlags().StringVar(&g.failOn, "fail-on", "critical", "exit 3 when a finding is at or above: never, warning or critical")

	root.AddCommand(commands(g)...)
	return root
}

// commands lists the subcommands, one constructor per file.
func commands(g *Globals) []*cobra.Command {
	return []*cobra.Command{
		newSocketsCmd(g),
		newForwardCmd(g),
		newUDPFragCmd(g),
		newPipelineCmd(g),
		newESCmd(g),
		newSmokeCmd(g),
		newConfigCmd(g),
	}
}

// lockedWriter serializes writes: a command's own lines and its
// goroutines' log lines share stderr, and a writer given to Main (a test's
// bytes.Buffer) need not be safe for concurrent use as *os.File is.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// Main runs logdoctor with args and returns the exit code.
func Main(ctx context.Context, args []string, streams IO) ExitCode {
	streams.Out = &lockedWriter{w: streams.Out}
	streams.Err = &lockedWriter{w: streams.Err}
	g := &Globals{IO: streams, Now: time.Now}
	root := NewRootCmd(g)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err != nil {
		msg := report.Redact(err.Error())
		var ue *UsageError
		if errors.As(err, &ue) || !g.started {
			fmt.Fprintf(streams.Err, "logdoctor: %s\nRun 'logdoctor --help' for usage.\n", msg)
			return ExitUsage
		}
		fmt.Fprintf(streams.Err, "logdoctor: %s\n", msg)
		return ExitError
	}
	if g.policy.Fails(g.worst) {
		return ExitFindings
	}
	return ExitOK
}
