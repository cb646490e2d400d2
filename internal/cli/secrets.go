package cli

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"
)

// The commands that talk TLS or to Elasticsearch (forward probe/serve,
// pipeline run, smoke, es) read the same kinds of files and secrets; these
// helpers are the one place that does it. Errors name the flag, and each
// caller decides whether a bad file is a usage error.

// certPool reads a PEM CA bundle named by flag.
func certPool(flag, path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s %s: no PEM certificate found", flag, path)
	}
	return pool, nil
}

// errPairIncomplete is returned when only one of a cert/key flag pair is set.
var errPairIncomplete = errors.New("certificate and key go together")

// keyPair loads a certificate and key given by two flags; both empty gives
// nil.
func keyPair(certFlag, certPath, keyFlag, keyPath string) (*tls.Certificate, error) {
	if certPath == "" && keyPath == "" {
		return nil, nil
	}
	if certPath == "" || keyPath == "" {
		return nil, fmt.Errorf("%s and %s: %w", certFlag, keyFlag, errPairIncomplete)
	}
	pair, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		return nil, fmt.Errorf("%s/%s: %w", certFlag, keyFlag, err)
	}
	return &pair, nil
}

// esPassword resolves an Elasticsearch password: the flag's value, else the
// file named by fileFlag (trailing newline dropped), else
// LOGDOCTOR_ES_PASSWORD, so it need not appear in a process listing.
func esPassword(password, fileFlag, file string) (string, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("%s: %w", fileFlag, err)
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
	if password == "" {
		password = os.Getenv("LOGDOCTOR_ES_PASSWORD")
	}
	return password, nil
}
