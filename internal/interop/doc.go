// Package interop holds the tests that run logdoctor against real Fluentd
// (v1.16.11 with fluent-plugin-elasticsearch 5.2.5) and Fluent Bit (v4.2.8)
// from ../shared/peers: what users run is the truth, so each protocol
// reading of ours is checked here against the shippers themselves.
//
// Each test starts its shippers through internal/shippertest with its own
// ports and temporary directory, runs the logdoctor binary built once for
// the package, and stops everything it started by PID. There is no code
// here besides the tests.
package interop
