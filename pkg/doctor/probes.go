package doctor

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"strings"
	"time"

	"github.com/logdoctor/logdoctor/pkg/configcheck"
	"github.com/logdoctor/logdoctor/pkg/esprobe"
	"github.com/logdoctor/logdoctor/pkg/forward"
	"github.com/logdoctor/logdoctor/pkg/forwardprobe"
	"github.com/logdoctor/logdoctor/pkg/report"
	"github.com/logdoctor/logdoctor/pkg/shipconf"
)

// ESProbe is es probe run with one output's own settings.
type ESProbe struct {
	Output   string          `json:"output"`
	At       string          `json:"at"`
	URLs     []string        `json:"urls"`
	Result   *esprobe.Result `json:"result,omitempty"`
	Error    string          `json:"error,omitempty"`
	findings []report.Finding
	out      *ESOutput
}

// ForwardProbe is forward probe run against one <server> with the
// output's key and TLS settings.
type ForwardProbe struct {
	Output   string               `json:"output"`
	At       string               `json:"at"`
	Addr     string               `json:"addr"`
	Result   *forwardprobe.Result `json:"result,omitempty"`
	Error    string               `json:"error,omitempty"`
	findings []report.Finding
	out      *ForwardOutput
	pos      shipconf.Pos
}

// caPool reads a CA bundle the configuration names, from the shipper's
// own file system.
func caPool(files TargetFiles, path string) (*x509.CertPool, error) {
	pem, err := files.ReadFile(path, 4<<20)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no PEM certificate", path)
	}
	return pool, nil
}

// probeES runs es probe against o's URLs with o's credentials and TLS
// settings, from inside the shipper's namespace. It writes nothing: no
// canary index. The two write-pressure snapshots are taken interval
// apart, so rejections of the shipper's own bulks show as a delta.
func probeES(ctx context.Context, o *ESOutput, n *Net, files TargetFiles, interval, timeout time.Duration) *ESProbe {
	p := &ESProbe{Output: o.Name, At: o.At, URLs: o.URLs, out: o}
	if len(o.URLs) == 0 {
		p.Error = "no host in the configuration"
		return p
	}
	opts := esprobe.Options{URLs: o.URLs, Username: o.User, Password: o.Password, APIKey: o.APIKey,
		Insecure: !o.Verify, BulkSize: o.BulkSize, RequestTimeout: o.RequestTimeout, Sequential: 5, Concurrent: 2,
		IdleWait: 0, BulkSamples: 2, Timeout: timeout, MinInterval: interval, DialContext: n.DialContext}
	if o.CAFile != "" {
		pool, err := caPool(files, o.CAFile)
		if err != nil {
			p.Error = fmt.Sprintf("ca_file: %v", err)
			return p
		}
		opts.RootCAs = pool
	}
	res, fs, err := esprobe.Run(ctx, opts)
	if err != nil {
		p.Error = report.Redact(err.Error())
		return p
	}
	p.Result = res
	p.findings = fs
	return p
}

// probeForward sends one canary chunk, asking for an ack, the way the
// output would (same key, user and TLS settings), and says whether the
// receiver acknowledged it.
func probeForward(ctx context.Context, o *ForwardOutput, s ForwardServer, n *Net, files TargetFiles, ackTimeout time.Duration) *ForwardProbe {
	p := &ForwardProbe{Output: o.Name, At: fmt.Sprintf("%s:%d", s.At.File, s.At.Line), Addr: s.Addr, out: o}
	cc := forward.ClientConfig{Dialer: n, SharedKey: s.SharedKey, Username: s.Username, Password: s.Password,
		Hostname: o.SelfHostname, HandshakeTimeout: ackTimeout}
	if o.TLS {
		tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: !o.Verify} //nolint:gosec // the shipper's own setting
		if o.CAFile != "" {
			pool, err := caPool(files, o.CAFile)
			if err != nil {
				p.Error = fmt.Sprintf("CA file: %v", err)
				return p
			}
			tc.RootCAs = pool
		}
		if host, _, err := splitHost(s.Addr); err == nil {
			tc.ServerName = host
		}
		cc.TLSConfig = tc
	}
	res, fs, err := forwardprobe.Run(ctx, forwardprobe.Options{Addr: s.Addr, Tag: "logdoctor.doctor", Modes: []forward.Mode{forward.ModePacked},
		AckTimeout: ackTimeout, Client: cc})
	if err != nil {
		p.Error = report.Redact(err.Error())
		return p
	}
	p.Result, p.findings = res, fs
	return p
}

func splitHost(addr string) (string, string, error) {
	i := strings.LastIndexByte(addr, ':')
	if i < 0 {
		return "", "", fmt.Errorf("no port in %q", addr)
	}
	return strings.Trim(addr[:i], "[]"), addr[i+1:], nil
}

// esFacts are what the probes learned that the configuration rules can
// use: the cluster's version and its smallest http.max_content_length.
func esFacts(ps []*ESProbe) (*configcheck.Version, int64) {
	var ver *configcheck.Version
	var mcl int64
	for _, p := range ps {
		if p.Result == nil {
			continue
		}
		for _, t := range p.Result.Targets {
			if !t.Reachable || t.Version == "" || ver != nil {
				continue
			}
			v, err := configcheck.ParseVersion(t.Version)
			if err != nil {
				continue
			}
			v.OpenSearch = t.Product == "opensearch"
			ver = &v
		}
		if m := p.Result.MaxContentLength; m > 0 && (mcl == 0 || m < mcl) {
			mcl = m
		}
	}
	return ver, mcl
}

// esFindings ties the probe's findings to the output, and judges the
// sniffed addresses against the output's own setting: unreachable publish
// addresses only hurt an output that sniffs.
func (p *ESProbe) esFindings(n *Net) []report.Finding {
	o := p.out
	var out []report.Finding
	for _, f := range p.findings {
		if f.Evidence == nil {
			f.Evidence = map[string]any{}
		}
		f.Evidence["output"] = o.Name
		f.Evidence["file"], f.Evidence["line"] = o.HostAt.File, o.HostAt.Line
		f.Summary = fmt.Sprintf("output %s (%s): %s", o.Name, at(o.HostAt), f.Summary)
		if f.ID == esprobe.FindingSniffUnreachable {
			where := "from the shipper's network namespace"
			if !n.Inside() {
				where = "from logdoctor's network namespace (it could not enter the shipper's)"
			}
			f.Evidence["reached"] = where
			if o.SniffParam != nil {
				f.Evidence["sniff_setting"] = o.SniffParam.Key
				f.Evidence["sniff_at"] = at(o.SniffParam.Pos)
			}
			if o.Sniffs {
				f.Severity = report.Critical
				f.Summary += fmt.Sprintf(" (%s); the output sniffs (%s %s at %s), so it will switch to them and lose its connections",
					where, o.SniffParam.Key, o.SniffParam.Value, at(o.SniffParam.Pos))
			} else {
				f.Severity = report.Info
				f.Summary += " (" + where + "); the output does not sniff, so it keeps its configured hosts"
			}
		}
		out = append(out, f)
	}
	return out
}

// fwdFindings ties the probe's findings to the output and server.
func (p *ForwardProbe) fwdFindings() []report.Finding {
	var out []report.Finding
	for _, f := range p.findings {
		if f.Evidence == nil {
			f.Evidence = map[string]any{}
		}
		f.Evidence["output"] = p.out.Name
		f.Evidence["file"], f.Evidence["line"] = p.pos.File, p.pos.Line
		f.Evidence["require_ack_response"] = p.out.RequireAck
		f.Summary = fmt.Sprintf("output %s (%s): %s", p.out.Name, p.At, f.Summary)
		out = append(out, f)
	}
	return out
}
