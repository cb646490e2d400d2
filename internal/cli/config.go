package cli

import (
	"errors"
	"fmt"
	"net"
	"os"

	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/logdoctor/logdoctor/internal/buildinfo"
	"github.com/logdoctor/logdoctor/pkg/configcheck"
	"github.com/logdoctor/logdoctor/pkg/report"
	"github.com/logdoctor/logdoctor/pkg/shipconf"
)

// ConfigCheckOptions are config check's flags.
type ConfigCheckOptions struct {
	Files  []string
	Format shipconf.Format // "" detects
	Env    map[string]string
	// MTU is --mtu; 0 asks Interfaces for the smallest non-loopback MTU.
	MTU        int
	Interfaces func() ([]net.Interface, error)
	ESVersion  *configcheck.Version
	// ESMaxContentLength is --es-max-content-length in bytes (0: not
	// given).
	ESMaxContentLength int64
	FS                 shipconf.Files
	Now                func() time.Time
}

const docsBase = "https://github.com/logdoctor/logdoctor/blob/main/docs/commands/config.md#"

func newConfigCmd(g *Globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Check Fluentd and Fluent Bit configurations for the settings that lose, duplicate or stall logs",
	}
	cmd.AddCommand(newConfigCheckCmd(g, nil))
	return cmd
}

// newConfigCheckCmd builds `config check`; runF, when set, gets the
// parsed options instead of the check running.
func newConfigCheckCmd(g *Globals, runF func(ConfigCheckOptions) error) *cobra.Command {
	var (
		format, esVersion, maxContent string
		envs                          []string
		useEnv                        bool
		mtu                           int
	)
	cmd := &cobra.Command{
		Use:   "check FILE...",
		Short: "Find risky settings in Fluentd and Fluent Bit configurations, with the file, line and fix",
		Long: `config check reads Fluentd (fluent.conf, YAML) and Fluent Bit (classic, YAML)
configurations, follows their includes, builds one model of the pipeline and
reports the settings behind lost, duplicated and stalled logs: forward without
acks, memory buffers, unbounded or dropping retries, Elasticsearch outputs
without a stable _id or that drop 429s, connection reloading, oversized bulks,
UDP inputs above the MTU, secrets in the file, no monitoring. Each finding
names the file, line and setting, and the value to change it to.

Environment references ("#{ENV['X']}", ${X}) are resolved from --env and
--use-env; other embedded Ruby is never evaluated (its values are reported as
unknown). -o sarif writes SARIF 2.1.0 for code scanning in CI.`,
		Example: `  logdoctor config check /etc/fluent/fluent.conf
  logdoctor config check fluent-bit.conf parsers.conf --format fluentbit
  logdoctor config check k8s/fluentd/fluent.conf --env ES_HOST=es --use-env -o sarif > config.sarif
  logdoctor config check fluent-bit.yaml --es-version 8.15 --mtu 1460 --fail-on warning`,
		Args: cobra.MinimumNArgs(1),
		RunE: g.run(func(cmd *cobra.Command, args []string) error {
			o := ConfigCheckOptions{Files: args, Interfaces: net.Interfaces, Now: g.Now, MTU: mtu}
			switch format {
			case "":
			case "fluentd":
				o.Format = shipconf.FormatFluentd
			case "fluentbit", "fluent-bit":
				o.Format = shipconf.FormatFluentBit
			default:
				return usageErrorf("invalid --format %q: want fluentd or fluentbit", format)
			}
			var err error
			if o.Env, err = configEnv(envs, useEnv, os.Environ()); err != nil {
				return &UsageError{Err: err}
			}
			if esVersion != "" {
				v, err := configcheck.ParseVersion(esVersion)
				if err != nil {
					return usageErrorf("invalid --es-version: %v", err)
				}
				o.ESVersion = &v
			}
			if maxContent != "" {
				// Checked while parsing flags (sizeVar): cannot fail here.
				o.ESMaxContentLength, _ = parseESBytes(maxContent)
			}
			if runF != nil {
				return runF(o)
			}
			r, err := runConfigCheck(o)
			if err != nil {
				return err
			}
			g.renderer.SARIF = report.SARIFInfo{Version: buildinfo.Version, InformationURI: "https://github.com/logdoctor/logdoctor", Rules: configRules()}
			return g.Emit(r)
		}),
	}
	f := cmd.Flags()
	enumVar(f, &format, "format", "", []string{"", "fluentd", "fluentbit", "fluent-bit"}, "force the syntax: fluentd or fluentbit (default: from the file name and content; .yaml/.yml is YAML)")
	f.StringArrayVar(&envs, "env", nil, "KEY=VALUE for environment references in the files (repeatable)")
	f.BoolVar(&useEnv, "use-env", false, "resolve environment references from logdoctor's own environment too (--env wins)")
	intCheckVar(f, &mtu, "mtu", 0, func(n int) bool { return n == 0 || (n >= 68 && n <= 65535) }, "0 (this host's smallest) or 68..65535", "path MTU for the UDP size rule (default: the smallest MTU of this host's non-loopback interfaces, 1500 when none)")
	f.StringVar(&esVersion, "es-version", "", "the cluster's version, for the rules that depend on it: 8, 7.17, opensearch-2")
	sizeVar(f, &maxContent, "es-max-content-length", "", parseESBytes, 1, true, "a size like 100mb, 100MiB or 104857600, up to 1TiB", "the cluster's http.max_content_length (e.g. 100mb, 104857600)")
	return cmd
}

// configRules is the SARIF rule list with links to each id's docs.
func configRules() []report.Rule {
	rs := make([]report.Rule, len(configcheck.Rules))
	for i, r := range configcheck.Rules {
		r.HelpURI = docsBase + strings.ReplaceAll(r.ID, ".", "")
		rs[i] = r
	}
	return rs
}

// configEnv merges --use-env (the process environment) and --env.
func configEnv(flags []string, useEnv bool, environ []string) (map[string]string, error) {
	env := map[string]string{}
	if useEnv {
		for _, kv := range environ {
			if k, v, ok := strings.Cut(kv, "="); ok {
				env[k] = v
			}
		}
	}
	for _, kv := range flags {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("invalid --env %q: want KEY=VALUE", kv)
		}
		env[k] = v
	}
	return env, nil
}

// errNoConfig is returned for a file that cannot be read as a
// configuration at all.
var errNoConfig = errors.New("cannot check")

func runConfigCheck(o ConfigCheckOptions) (*report.Report, error) {
	if o.Now == nil {
		o.Now = time.Now
	}
	started := o.Now()
	r := report.New("config check", started)
	mtu, source := o.MTU, "flag"
	if mtu == 0 {
		mtu, source = hostMTU(o.Interfaces)
	}
	opts := configcheck.Options{MTU: mtu, MTUSource: source, ESVersion: o.ESVersion, ESMaxContentLength: o.ESMaxContentLength}
	data := &configcheck.Result{Configs: []configcheck.Summary{}, MTU: mtu, MTUSource: source}
	for _, file := range o.Files {
		cfg, err := shipconf.Load(file, shipconf.Options{Format: o.Format, Env: o.Env, Files: o.FS})
		if err != nil {
			return nil, fmt.Errorf("%w: %w", errNoConfig, err)
		}
		fs, sum := configcheck.Analyze(cfg, opts)
		if len(r.Findings) == 0 && len(fs) > 0 {
			r.Findings = fs // no copy of a long list
		} else {
			r.Add(fs...)
		}
		data.Configs = append(data.Configs, sum)
	}
	r.Data = data
	r.Finish(o.Now())
	return r, nil
}

// hostMTU is the smallest MTU among the host's non-loopback interfaces that
// are up: the path MTU can be no larger than the first hop's.
func hostMTU(ifaces func() ([]net.Interface, error)) (int, string) {
	if ifaces == nil {
		return configcheck.DefaultMTU, "default"
	}
	list, err := ifaces()
	if err != nil {
		return configcheck.DefaultMTU, "default"
	}
	best := 0
	for _, i := range list {
		if i.Flags&net.FlagLoopback != 0 || i.Flags&net.FlagUp == 0 || i.MTU <= 0 {
			continue
		}
		if best == 0 || i.MTU < best {
			best = i.MTU
		}
	}
	if best == 0 {
		return configcheck.DefaultMTU, "default"
	}
	return best, "interface"
}
