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
	"strings"
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
	// Hangups, set by main, starts delivering SIGHUP to a command that
	// reopens its files on it (pipeline run) until stop is called; nil:
	// no hangups arrive.
	Hangups func() (hangups <-chan os.Signal, stop func())
}

// SignalError is the cause main cancels the context with on SIGINT or
// SIGTERM, so a command can say which signal stopped it.
type SignalError struct{ Signal os.Signal }

func (e *SignalError) Error() string { return "signal: " + e.Signal.String() }

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
	html   string // --html FILE: also write each report as a page there

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
	if err := g.renderer.Render(g.IO.Out, r); err != nil {
		return err
	}
	if g.html != "" {
		return writeHTMLFile(g.html, r)
	}
	return nil
}

// JSON reports whether a machine format (-o json or sarif) was chosen;
// progress output stays silent then.
func (g *Globals) JSON() bool { return g.renderer.Format != report.FormatTable }

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
			if g.html != "" {
				if err := checkHTMLPath(g.html); err != nil {
					// The command line is right; the machine is not
					// ready: exit 1, like every file a flag names.
					return &runError{err}
				}
			}
			return nil
		},
	}
	root.SetIn(g.IO.In)
	root.SetOut(g.IO.Out)
	root.SetErr(g.IO.Err)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return &UsageError{Err: err} })
	pf := root.PersistentFlags()
	enumVarP(pf, &g.output, "output", "o", "table", []string{"table", "json", "sarif"}, "output format: table, json or sarif (SARIF 2.1.0, for code scanning)")
	enumVar(pf, &g.failOn, "fail-on", "critical", []string{"never", "warning", "critical"}, "exit 3 when a finding is at or above: never, warning or critical")
	nonEmptyVar(pf, &g.html, "html", "", "a file path", "also write the report as one self-contained HTML page to FILE (no scripts, nothing loaded from the network; rewritten at each --watch sample)")

	root.AddCommand(commands(g)...)
	// cobra adds its completion command at Execute; add it now so that it
	// is guarded like the others.
	root.InitDefaultCompletionCmd()
	guardParents(root)
	root.SetHelpCommand(&cobra.Command{
		Use:   "help [command]",
		Short: "Help about any command",
		Args:  cobra.ArbitraryArgs,
		RunE: func(c *cobra.Command, args []string) error {
			cmd, rest, err := c.Root().Find(args)
			if err != nil || len(rest) > 0 {
				return usageErrorf("unknown help topic %q", strings.Join(args, " "))
			}
			return cmd.Help()
		},
	})
	return root
}

// guardParents makes every command that only groups subcommands refuse
// anything else: cobra would print the parent's help and exit 0 for
// `pipeline rnu`, which a CI script takes for success.
func guardParents(c *cobra.Command) {
	for _, sub := range c.Commands() {
		guardParents(sub)
	}
	if !c.HasSubCommands() {
		return
	}
	c.SuggestionsMinimumDistance = 2
	c.Args = func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			return nil
		}
		msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
		if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
			msg += fmt.Sprintf(" (did you mean %s?)", strings.Join(s, " or "))
		}
		return &UsageError{Err: errors.New(msg)}
	}
	if c.RunE == nil && c.Run == nil {
		c.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
	}
}

// commands lists the subcommands, one constructor per file.
func commands(g *Globals) []*cobra.Command {
	return []*cobra.Command{
		newSocketsCmd(g, nil),
		newForwardCmd(g),
		newUDPFragCmd(g, nil),
		newPipelineCmd(g, nil),
		newESCmd(g),
		newSmokeCmd(g, nil),
		newConfigCmd(g),
		newDoctorCmd(g, nil),
		newExporterCmd(g, nil),
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
	cmd, err := root.ExecuteContextC(ctx)
	if err != nil {
		msg := report.Redact(err.Error())
		var ue *UsageError
		var re *runError
		if !errors.As(err, &re) && (errors.As(err, &ue) || !g.started) {
			// Point at the help of the command that was called, where its
			// flags and their ranges are listed.
			path := root.CommandPath()
			if cmd != nil && cmd.Name() != "help" {
				path = cmd.CommandPath()
			}
			fmt.Fprintf(streams.Err, "logdoctor: %s\nRun '%s --help' for usage.\n", msg, path)
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
