// Package buildinfo carries the version stamped in by the Makefile.
package buildinfo

// Set with -ldflags "-X github.com/logdoctor/logdoctor/internal/buildinfo.Version=...".
// These are the only package-level variables in the project: the linker can
// only stamp variables.
var (
	Version = "dev"
	Commit  = "unknown"
)
