package esprobe

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/logdoctor/logdoctor/internal/stats"
	"github.com/logdoctor/logdoctor/pkg/esclient"
	"github.com/logdoctor/logdoctor/pkg/report"
)

// checkTarget resolves the URL's host with res (when it is a name) and
// asks GET / through cl: reachable, which product and version.
func checkTarget(ctx context.Context, res *net.Resolver, cl *client) (Target, outcome) {
	var out outcome
	base := cl.es.Base
	t := Target{URL: base}
	u, _ := url.Parse(base)
	host := u.Hostname()
	if net.ParseIP(host) == nil {
		start := time.Now()
		addrs, err := res.LookupHost(ctx, host)
		t.DNSMS = stats.MS(time.Since(start))
		c := Check{Name: "dns", Target: host, OK: err == nil}
		if err != nil {
			c.Detail = err.Error()
			t.Error, t.errKind = errString(err), esclient.KindDNS
			out.check(c, start)
			return t, out
		}
		t.Addresses = addrs
		c.Detail = strings.Join(addrs, ", ")
		out.check(c, start)
	}
	start := time.Now()
	var root struct {
		Name        string `json:"name"`
		ClusterName string `json:"cluster_name"`
		Version     struct {
			Number       string `json:"number"`
			Distribution string `json:"distribution"`
		} `json:"version"`
		Tagline string `json:"tagline"`
	}
	r, err := cl.getJSON(ctx, "/", &root)
	c := Check{Name: "reachability", Target: base}
	if r != nil {
		t.Status = r.Status
		t.LatencyMS = stats.MS(r.Elapsed)
		t.ProductHdr = r.Header.Get("X-Elastic-Product") == "Elasticsearch"
		out.latency(r.Elapsed)
	}
	if err != nil {
		t.Error = errString(err)
		if st, ok := esclient.Unauthorized(err); ok {
			t.unauthorized = st
			t.errKind = "auth"
		} else {
			t.errKind = esclient.ErrorKind(err)
		}
		c.Detail = t.Error
		out.check(c, start)
		return t, out
	}
	t.Reachable = true
	t.Version = root.Version.Number
	t.ClusterName = root.ClusterName
	t.NodeName = root.Name
	t.Product = "elasticsearch"
	if root.Version.Distribution == "opensearch" {
		t.Product = "opensearch"
	}
	c.OK = true
	c.Detail = fmt.Sprintf("%s %s, cluster %q, node %q", t.Product, t.Version, t.ClusterName, t.NodeName)
	out.check(c, start)
	return t, out
}

// targetFindings: each URL reachable (then its product check), refused
// credentials, or unreachable with why.
func targetFindings(targets []Target, auth esclient.Auth) outcome {
	var out outcome
	for _, t := range targets {
		switch {
		case t.Reachable:
			if f, ok := productFinding(t); ok {
				out.add(f)
			}
		case t.unauthorized != 0:
			out.add(report.Finding{ID: FindingAuthFailed, Severity: report.Critical,
				Summary:  fmt.Sprintf("%s answered HTTP %d: the credentials are missing or refused", t.URL, t.unauthorized),
				Evidence: map[string]any{"url": t.URL, "status": t.unauthorized, "user_set": auth.Username != "", "api_key_set": auth.APIKey != ""},
				Remedy:   remedyAuth})
		default:
			ev := map[string]any{"url": t.URL, "error": t.Error, "kind": t.errKind}
			if t.Status != 0 {
				ev["status"] = t.Status
			}
			out.add(report.Finding{ID: FindingUnreachable, Severity: report.Critical,
				Summary:  fmt.Sprintf("%s is unreachable (%s): %s", t.URL, t.errKind, t.Error),
				Evidence: ev, Remedy: remedyUnreachable})
		}
	}
	return out
}

// productFinding: Elastic's clients 7.14+ require X-Elastic-Product from
// Elasticsearch 7.14+ and refuse OpenSearch outright.
func productFinding(t Target) (report.Finding, bool) {
	ev := map[string]any{"url": t.URL, "version": t.Version, "product": t.Product, "x_elastic_product": t.ProductHdr}
	if t.Product == "opensearch" {
		return report.Finding{ID: FindingProductCheck, Severity: report.Info,
			Summary:  fmt.Sprintf("%s is OpenSearch %s: Elastic's clients from 7.14 on (fluent-plugin-elasticsearch's elasticsearch gem) refuse it", t.URL, t.Version),
			Evidence: ev, Remedy: remedyOpenSearch}, true
	}
	if !t.ProductHdr && versionAtLeast(t.Version, 7, 14) {
		return report.Finding{ID: FindingProductCheck, Severity: report.Warning,
			Summary:  fmt.Sprintf("%s claims Elasticsearch %s but sends no X-Elastic-Product header: Elastic's clients 7.14+ will refuse it", t.URL, t.Version),
			Evidence: ev, Remedy: remedyProductStripped}, true
	}
	return report.Finding{}, false
}

// versionAtLeast compares a "major.minor[.patch]" version.
func versionAtLeast(v string, major, minor int) bool {
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return false
	}
	ma, err1 := strconv.Atoi(parts[0])
	mi, err2 := strconv.Atoi(parts[1])
	if err1 != nil || err2 != nil {
		return false
	}
	return ma > major || (ma == major && mi >= minor)
}
