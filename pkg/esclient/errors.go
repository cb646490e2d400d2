package esclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"syscall"
)

// StatusError is an HTTP answer other than the one asked for, with
// Elasticsearch's error.type when the body carries one.
type StatusError struct {
	Path   string
	Status int
	Type   string
}

func (e *StatusError) Error() string {
	if e.Type != "" {
		return fmt.Sprintf("%s: HTTP %d (%s)", e.Path, e.Status, e.Type)
	}
	return fmt.Sprintf("%s: HTTP %d", e.Path, e.Status)
}

// Unauthorized reports a 401 or 403 answer and its status: credentials
// missing or refused, which no retry cures.
func Unauthorized(err error) (int, bool) {
	var se *StatusError
	if errors.As(err, &se) && (se.Status == http.StatusUnauthorized || se.Status == http.StatusForbidden) {
		return se.Status, true
	}
	return 0, false
}

// maxErrorType caps a cluster's error text before it reaches a report.
const maxErrorType = 120

// ErrorType extracts error.type (or the error string, as in Elasticsearch's
// "no handler found" answers) from an Elasticsearch error body; "" when
// there is none.
func ErrorType(body []byte) string {
	var e struct {
		Error json.RawMessage `json:"error"`
	}
	if json.Unmarshal(body, &e) != nil || e.Error == nil {
		return ""
	}
	var s string
	if json.Unmarshal(e.Error, &s) != nil {
		var o struct {
			Type string `json:"type"`
		}
		_ = json.Unmarshal(e.Error, &o) // not an object either: no type
		s = o.Type
	}
	if len(s) > maxErrorType {
		s = s[:maxErrorType]
	}
	return s
}

// The kinds of request failure ErrorKind tells apart.
const (
	KindDNS     = "dns"     // the name did not resolve
	KindRefused = "refused" // nothing listens there (a RST to the SYN)
	KindTimeout = "timeout" // connect, TLS handshake, headers or body took too long
	KindTLS     = "tls"     // certificate not trusted or not for this name, or no TLS there
	KindNetwork = "network" // any other socket-level failure (reset, unreachable)
	KindOther   = "error"
)

// ErrorKind sorts a request or dial error by what went wrong, from the
// error's types alone: the summary line of es.unreachable names it.
func ErrorKind(err error) string {
	var dnsErr *net.DNSError
	var netErr net.Error
	var opErr *net.OpError
	switch {
	case err == nil:
		return ""
	case errors.As(err, &dnsErr):
		return KindDNS
	case errors.Is(err, syscall.ECONNREFUSED):
		return KindRefused
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return KindTimeout
	case isTLS(err):
		return KindTLS
	case errors.As(err, &opErr):
		return KindNetwork
	}
	return KindOther
}

// isTLS: the certificate was refused (unknown authority, wrong name,
// expired or otherwise invalid), the peer does not speak TLS, or it sent
// a TLS alert (it refused our side of the handshake).
func isTLS(err error) bool {
	var (
		verify    *tls.CertificateVerificationError
		authority x509.UnknownAuthorityError
		hostname  x509.HostnameError
		invalid   x509.CertificateInvalidError
		roots     x509.SystemRootsError
		header    tls.RecordHeaderError
		alert     tls.AlertError
		opErr     *net.OpError
	)
	switch {
	case errors.As(err, &verify), errors.As(err, &authority), errors.As(err, &hostname),
		errors.As(err, &invalid), errors.As(err, &roots), errors.As(err, &header), errors.As(err, &alert):
		return true
	case errors.As(err, &opErr) && opErr.Op == "remote error":
		// crypto/tls reports an alert from the peer as a net.OpError whose
		// Op is "remote error" and whose Err is its unexported alert type.
		return true
	}
	return false
}
