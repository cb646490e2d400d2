package esclient

import (
	"crypto/tls"
	"crypto/x509"
)

// TLSConfig verifies the cluster's certificate against roots (nil: the
// system roots), or not at all when insecure is set, which is the user's
// explicit choice (--insecure). TLS 1.2 is the floor, as Elasticsearch 8's.
func TLSConfig(roots *x509.CertPool, insecure bool) *tls.Config {
	return &tls.Config{RootCAs: roots, InsecureSkipVerify: insecure, MinVersion: tls.VersionTLS12} //nolint:gosec // insecure is the user's explicit choice
}
