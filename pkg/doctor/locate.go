package doctor

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// flagValue returns the value of the first of names in args: "-c X",
// "-cX" (one-letter flags), "--config X" or "--config=X".
func flagValue(args []string, names ...string) (string, bool) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		for _, n := range names {
			switch {
			case a == n:
				if i+1 < len(args) {
					return args[i+1], true
				}
				return "", false
			case strings.HasPrefix(n, "--") && strings.HasPrefix(a, n+"="):
				return a[len(n)+1:], true
			case len(n) == 2 && !strings.HasPrefix(n, "--") && strings.HasPrefix(a, n) && len(a) > 2 && !strings.HasPrefix(a, "--"):
				return a[2:], true
			}
		}
	}
	return "", false
}

// shipperArgs are the arguments the shipper itself reads: for Fluentd,
// those after the fluentd script (Ruby's own come before).
func shipperArgs(p Process) []string {
	if len(p.argv) == 0 {
		return nil
	}
	if p.Kind == Fluentd {
		if i := fluentdScript(p.argv); i >= 0 {
			return p.argv[i+1:]
		}
	}
	return p.argv[1:]
}

// ConfigSource says where the configuration path came from.
type ConfigSource struct {
	// Path is the main file as the shipper names it (inside its own
	// mount namespace; relative paths are relative to its working
	// directory).
	Path string `json:"path"`
	// From says how it was found: "command line -c", "FLUENT_CONF in its
	// environment", "default path", "--config".
	From string `json:"from"`
	// Tried lists the default paths looked for, when none was given.
	Tried []string `json:"tried,omitempty"`
}

// fluentdDefaults are where Fluentd's packages put the configuration,
// most specific first: td-agent 4, fluent-package 5, the official
// container image, then the gem's own default (Fluent::DEFAULT_CONFIG_PATH).
func fluentdDefaults(argv []string) []string {
	joined := strings.Join(argv, " ")
	var out []string
	if strings.Contains(joined, "td-agent") {
		out = append(out, "/etc/td-agent/td-agent.conf")
	}
	if strings.Contains(joined, "/opt/fluent/") {
		out = append(out, "/etc/fluent/fluentd.conf")
	}
	return append(out, "/fluentd/etc/fluent.conf", "/etc/fluent/fluent.conf", "/etc/fluent/fluentd.conf", "/etc/td-agent/td-agent.conf")
}

// fluentBitDefaults are the paths of Fluent Bit's packages and image.
func fluentBitDefaults(argv []string) []string {
	var out []string
	if len(argv) > 0 && strings.Contains(argv[0], "td-agent-bit") {
		out = append(out, "/etc/td-agent-bit/td-agent-bit.conf")
	}
	return append(out, "/fluent-bit/etc/fluent-bit.conf", "/fluent-bit/etc/fluent-bit.yaml", "/etc/fluent-bit/fluent-bit.conf",
		"/etc/fluent-bit/fluent-bit.yaml", "/etc/td-agent-bit/td-agent-bit.conf")
}

// locateConfig finds the shipper's configuration: its command line, then
// its environment (FLUENT_CONF is Fluentd's own override; the Fluentd
// image's entrypoint names a file in /fluentd/etc with FLUENTD_CONF),
// then the default paths that exist in its file system.
func locateConfig(p Process, env map[string]string, files TargetFiles) (ConfigSource, bool) {
	args := shipperArgs(p)
	if v, ok := flagValue(args, "-c", "--config"); ok && v != "" {
		return ConfigSource{Path: v, From: "its command line (-c)"}, true
	}
	var tried []string
	if p.Kind == Fluentd {
		if v := env["FLUENT_CONF"]; v != "" {
			return ConfigSource{Path: v, From: "FLUENT_CONF in its environment"}, true
		}
		if v := env["FLUENTD_CONF"]; v != "" {
			if !filepath.IsAbs(v) {
				v = filepath.Join("/fluentd/etc", v)
			}
			if files.Exists(v) {
				return ConfigSource{Path: v, From: "FLUENTD_CONF in its environment"}, true
			}
			tried = append(tried, v)
		}
	}
	defaults := fluentdDefaults(p.argv)
	if p.Kind == FluentBit {
		defaults = fluentBitDefaults(p.argv)
	}
	for _, d := range defaults {
		if files.Exists(d) {
			return ConfigSource{Path: d, From: "default path", Tried: tried}, true
		}
		tried = append(tried, d)
	}
	return ConfigSource{Tried: tried}, false
}

// commandLinePipeline reports whether Fluent Bit was given its pipeline
// on the command line (-i/-o) rather than in a file.
func commandLinePipeline(p Process) bool {
	if p.Kind != FluentBit {
		return false
	}
	_, in := flagValue(shipperArgs(p), "-i", "--input")
	_, out := flagValue(shipperArgs(p), "-o", "--output")
	return in || out
}

// logFile returns the shipper's log file named on its command line, or
// "".
func logFile(p Process) string {
	args := shipperArgs(p)
	if p.Kind == FluentBit {
		v, _ := flagValue(args, "-l", "--log_file")
		return v
	}
	v, _ := flagValue(args, "-o", "--log")
	return v
}

// readEnviron reads /proc/PID/environ. The values never leave this
// package except to resolve the configuration and as the probes'
// credentials; reports name variables, never their values.
func readEnviron(procRoot string, pid int) (map[string]string, error) {
	b, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "environ"))
	if err != nil {
		return nil, err
	}
	return parseEnviron(b), nil
}

func parseEnviron(b []byte) map[string]string {
	env := map[string]string{}
	for _, kv := range bytes.Split(b, []byte{0}) {
		k, v, ok := bytes.Cut(kv, []byte("="))
		if !ok || len(k) == 0 {
			continue
		}
		env[string(k)] = string(v)
	}
	return env
}
