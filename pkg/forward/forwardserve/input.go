package forwardserve

import (
	"fmt"
	"strings"

	"github.com/logdoctor/logdoctor/pkg/forward"
	"github.com/logdoctor/logdoctor/pkg/report"
)

// Finding ids of the forward inputs logdoctor runs (`forward serve` and
// `pipeline run`): what the senders got wrong, which a shipper's own log
// shows only on the sender's side ("destination node closed the
// connection", retried forever).
const (
	FindingInputTLSFailed          = "forward.input_tls_failed"
	FindingInputAuthFailed         = "forward.input_auth_failed"
	FindingInputUnknownCompression = "forward.input_unknown_compression"
	FindingInputBadRequests        = "forward.input_bad_requests"
)

const (
	remedyInputTLS = "A sender that speaks plaintext to a TLS input (the error names its first bytes; 0x92-0x94 starts a " +
		"forward request) must use TLS: Fluentd out_forward `transport tls` with `tls_cert_path` (our CA), Fluent Bit " +
		"[OUTPUT] forward `tls on` with `tls.ca_file`. A certificate error means the sender does not trust our " +
		"certificate, or sends no client certificate while one is required (--tls-client-ca)."
	remedyInputAuth = "The senders' shared key (and user) must match this input's: Fluentd out_forward <security> " +
		"`shared_key`/`self_hostname` and <server> `username`/`password`; Fluent Bit [OUTPUT] forward `Shared_Key`, " +
		"`Self_Hostname`, `Username`, `Password`. The sender's self hostname must differ from ours. A sender whose " +
		"handshake fails delivers nothing and retries."
	remedyInputCompression = "The sender compresses with a codec this input cannot read, so every such chunk is " +
		"refused unacknowledged and retried forever. Set Fluentd out_forward `compress gzip` or leave `compress` " +
		"unset (its default sends \"text\", which is plain); Fluent Bit's forward output sends gzip with `Compress gzip`."
	remedyInputBadRequests = "Something sent bytes that are not a forward request, or a request over the size " +
		"limits. Check that only forward senders connect (not HTTP, syslog, or a TLS client on a plaintext port) and " +
		"that the senders' chunk size (Fluentd `chunk_limit_size`) stays under the request limit (--max-request-bytes / --max-request-size). A refused chunk is not acked."
)

// InputFindings turns a forward server's error counters into
// findings: one per kind, with the latest error as evidence.
func InputFindings(addr string, st forward.Stats) []report.Finding {
	var fs []report.Finding
	last := func(kind string) string { return report.Redact(st.LastErrors[kind]) }
	if st.TLSFailed > 0 {
		fs = append(fs, report.Finding{ID: FindingInputTLSFailed, Severity: report.Critical,
			Summary:  fmt.Sprintf("%d connection(s) to %s failed the TLS handshake; last: %s", st.TLSFailed, addr, last("tls")),
			Evidence: map[string]any{"listen": addr, "count": st.TLSFailed, "last_error": last("tls")},
			Remedy:   remedyInputTLS})
	}
	if st.AuthFailed > 0 {
		fs = append(fs, report.Finding{ID: FindingInputAuthFailed, Severity: report.Critical,
			Summary:  fmt.Sprintf("%d sender handshake(s) with %s failed; last: %s", st.AuthFailed, addr, last("auth")),
			Evidence: map[string]any{"listen": addr, "count": st.AuthFailed, "last_error": last("auth")},
			Remedy:   remedyInputAuth})
	}
	if st.UnknownCompression > 0 {
		fs = append(fs, report.Finding{ID: FindingInputUnknownCompression, Severity: report.Critical,
			Summary: fmt.Sprintf("%d request(s) to %s named a compression it cannot read (%s): refused without ack, connection closed",
				st.UnknownCompression, addr, strings.Join(st.Codecs, ", ")),
			Evidence: map[string]any{"listen": addr, "count": st.UnknownCompression, "codecs": st.Codecs, "last_error": last("unknown_compression")},
			Remedy:   remedyInputCompression})
	}
	if st.BadRequests > 0 {
		fs = append(fs, report.Finding{ID: FindingInputBadRequests, Severity: report.Warning,
			Summary:  fmt.Sprintf("%d connection(s) to %s were closed on a malformed or oversized request; last: %s", st.BadRequests, addr, last("bad_request")),
			Evidence: map[string]any{"listen": addr, "count": st.BadRequests, "last_error": last("bad_request")},
			Remedy:   remedyInputBadRequests})
	}
	return fs
}
