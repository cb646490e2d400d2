// Package image builds logdoctor's container image without a Docker daemon:
// an empty base plus one layer holding the static binary, a non-root user and
// a writable /tmp, written as a `docker save` tarball that `docker load`,
// `podman load`, `crane push` and kind/k3s image import all accept.
package image

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// UID and GID of the image's user. 65532 is the "nonroot" user of the
// distroless images, which Pod security policies commonly expect.
const (
	UID      = 65532
	GID      = 65532
	UserName = "nonroot"
	// BinaryPath is where the binary lives; PATH starts with "/" so that
	// `kubectl debug ... -- logdoctor sockets` finds it by name.
	BinaryPath = "/logdoctor"
)

// Options describes one image.
type Options struct {
	Binary  string    // path of the static logdoctor binary to ship
	Tag     string    // image reference written into the tarball, e.g. logdoctor:v1.2.3
	OS      string    // image platform; "linux" when empty
	Arch    string    // "amd64" when empty
	Created time.Time // image and file timestamps; zero means the Unix epoch, so builds are reproducible
}

// Build assembles the image in memory.
func Build(o Options) (v1.Image, error) {
	if o.Created.IsZero() {
		o.Created = time.Unix(0, 0).UTC()
	}
	bin, err := os.ReadFile(o.Binary)
	if err != nil {
		return nil, fmt.Errorf("read binary: %w", err)
	}
	layerTar, err := rootfs(bin, o.Created)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(layerTar)), nil
	})
	if err != nil {
		return nil, fmt.Errorf("layer: %w", err)
	}
	img, err := mutate.AppendLayers(empty.Image, layer)
	if err != nil {
		return nil, fmt.Errorf("append layer: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	cf = cf.DeepCopy()
	cf.OS = def(o.OS, "linux")
	cf.Architecture = def(o.Arch, "amd64")
	cf.Created = v1.Time{Time: o.Created}
	cf.Config = v1.Config{
		User:       fmt.Sprintf("%d:%d", UID, GID),
		Entrypoint: []string{BinaryPath},
		Cmd:        []string{"--help"},
		Env:        []string{"PATH=/:/usr/local/bin:/usr/bin:/bin", "HOME=/tmp", "TMPDIR=/tmp"},
		WorkingDir: "/tmp",
		Labels: map[string]string{
			"org.opencontainers.image.title":       "logdoctor",
			"org.opencontainers.image.description": "Find out why logs vanish, duplicate or stall between a shipper and Elasticsearch",
		},
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, fmt.Errorf("set config: %w", err)
	}
	return img, nil
}

// WriteTarball builds the image and writes it to path as a docker-save
// tarball tagged o.Tag.
func WriteTarball(path string, o Options) error {
	ref, err := name.NewTag(def(o.Tag, "logdoctor:dev"), name.WeakValidation)
	if err != nil {
		return fmt.Errorf("image tag %q: %w", o.Tag, err)
	}
	img, err := Build(o)
	if err != nil {
		return err
	}
	if err := tarball.WriteToFile(path, ref, img); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// rootfs is the single layer: the binary, /etc/passwd and /etc/group naming
// the non-root user (so tools that resolve the uid, and the shipper's own
// debug output, show a name), and a world-writable /tmp for smoke's
// durable buffer.
func rootfs(bin []byte, mtime time.Time) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dir := func(name string, mode int64) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: mode, ModTime: mtime, Format: tar.FormatPAX})
	}
	file := func(name string, mode int64, uid int, b []byte) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(b)),
			Uid: uid, Gid: uid, ModTime: mtime, Format: tar.FormatPAX}); err != nil {
			return err
		}
		_, err := tw.Write(b)
		return err
	}
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\n%s:x:%d:%d:%s:/tmp:/sbin/nologin\n", UserName, UID, GID, UserName)
	group := fmt.Sprintf("root:x:0:\n%s:x:%d:\n", UserName, GID)
	steps := []func() error{
		func() error { return dir("etc/", 0o755) },
		func() error { return file("etc/passwd", 0o644, 0, []byte(passwd)) },
		func() error { return file("etc/group", 0o644, 0, []byte(group)) },
		func() error { return dir("tmp/", 0o1777) },
		func() error { return file(BinaryPath[1:], 0o755, 0, bin) },
		tw.Close,
	}
	for _, s := range steps {
		if err := s(); err != nil {
			return nil, fmt.Errorf("build layer: %w", err)
		}
	}
	return buf.Bytes(), nil
}

func def(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
