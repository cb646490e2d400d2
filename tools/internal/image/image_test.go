package image

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"debug/elf"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// buildLogdoctor builds the product's binary from the repository root
// (this module lives in tools/, apart from the binary's module so that
// go-containerregistry is not among the binary's dependencies).
func buildLogdoctor(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "logdoctor")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/logdoctor")
	cmd.Dir = filepath.Join("..", "..", "..")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestImageTarballRuns builds the image the way `make image` does, then
// takes the tarball apart with nothing but archive/tar (manifest.json ->
// config -> layer) the way a container runtime would, and runs the binary
// found in the layer.
func TestImageTarballRuns(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("Linux only: the image holds a linux binary")
	}
	bin := buildLogdoctor(t)
	out := filepath.Join(t.TempDir(), "logdoctor-image.tar")
	if err := WriteTarball(out, Options{Binary: bin, Tag: "logdoctor:test"}); err != nil {
		t.Fatal(err)
	}

	files := readTar(t, mustOpen(t, out))
	var manifest []struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	if err := json.Unmarshal(files["manifest.json"], &manifest); err != nil {
		t.Fatalf("manifest.json: %v", err)
	}
	if len(manifest) != 1 || len(manifest[0].Layers) != 1 {
		t.Fatalf("want one image with one layer, got %+v", manifest)
	}
	if got := manifest[0].RepoTags; len(got) != 1 || got[0] != "logdoctor:test" {
		t.Errorf("RepoTags = %v", got)
	}
	var cfg struct {
		OS, Architecture string
		Config           struct {
			User       string
			Entrypoint []string
			Env        []string
		}
	}
	if err := json.Unmarshal(files[manifest[0].Config], &cfg); err != nil {
		t.Fatalf("config %s: %v", manifest[0].Config, err)
	}
	if cfg.OS != "linux" || cfg.Config.User != "65532:65532" ||
		strings.Join(cfg.Config.Entrypoint, " ") != "/logdoctor" {
		t.Errorf("config = %+v", cfg)
	}

	layer, modes := readTarModes(t, decompress(t, files[manifest[0].Layers[0]]))
	if !strings.Contains(string(layer["etc/passwd"]), "nonroot:x:65532:65532:") {
		t.Errorf("etc/passwd = %q", layer["etc/passwd"])
	}
	if !strings.Contains(string(layer["etc/group"]), "nonroot:x:65532:") {
		t.Errorf("etc/group = %q", layer["etc/group"])
	}
	if _, ok := layer["tmp/"]; !ok {
		t.Error("no /tmp in the layer")
	}
	if modes["tmp/"] != 0o1777 || modes["logdoctor"] != 0o755 {
		t.Errorf("modes: /tmp %o, /logdoctor %o", modes["tmp/"], modes["logdoctor"])
	}
	// A scratch image has no dynamic loader: the binary must be static.
	ef, err := elf.NewFile(bytes.NewReader(layer["logdoctor"]))
	if err != nil {
		t.Fatalf("/logdoctor is not an ELF binary: %v", err)
	}
	for _, p := range ef.Progs {
		if p.Type == elf.PT_INTERP {
			t.Fatal("/logdoctor is dynamically linked (PT_INTERP): it cannot run in a scratch image")
		}
	}
	exe := filepath.Join(t.TempDir(), "logdoctor")
	if err := os.WriteFile(exe, layer["logdoctor"], 0o755); err != nil {
		t.Fatal(err)
	}

	got, err := exec.Command(exe, "--version").CombinedOutput()
	if err != nil || !strings.Contains(string(got), "commit") {
		t.Fatalf("logdoctor --version from the image: %v\n%s", err, got)
	}
	// A real command, not just flag parsing: the socket table of this host.
	got, err = exec.Command(exe, "sockets", "-o", "json", "--no-processes", "--fail-on", "never").Output()
	if err != nil {
		t.Fatalf("logdoctor sockets from the image: %v\n%s", err, got)
	}
	var rep struct {
		Command string
		Data    struct {
			Sources struct {
				Source string // netlink, or proc with the files in Read
				Read   []struct{ Path string }
			}
		}
	}
	if err := json.Unmarshal(got, &rep); err != nil || rep.Command != "sockets" ||
		(rep.Data.Sources.Source != "netlink" && len(rep.Data.Sources.Read) == 0) {
		t.Fatalf("sockets report from the image binary: %v\n%.500s", err, got)
	}
}

func mustOpen(t *testing.T, p string) io.Reader {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.NewReader(b)
}

// readTar returns every entry's content by name (directories map to nil).
func readTar(t *testing.T, r io.Reader) map[string][]byte {
	t.Helper()
	files, _ := readTarModes(t, r)
	return files
}

// readTarModes also returns each entry's permission bits (sticky bit kept).
func readTarModes(t *testing.T, r io.Reader) (map[string][]byte, map[string]int64) {
	t.Helper()
	files, modes := map[string][]byte{}, map[string]int64{}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files, modes
		}
		if err != nil {
			t.Fatalf("tar: %v", err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatalf("tar %s: %v", h.Name, err)
		}
		if h.Typeflag == tar.TypeDir {
			b = nil
		}
		files[h.Name] = b
		modes[h.Name] = h.Mode & 0o7777
	}
}

// decompress accepts both compressed (docker save) and plain layers.
func decompress(t *testing.T, b []byte) io.Reader {
	t.Helper()
	if len(b) == 0 {
		t.Fatal("empty layer")
	}
	br := bufio.NewReader(bytes.NewReader(b))
	magic, _ := br.Peek(2)
	if !bytes.Equal(magic, []byte{0x1f, 0x8b}) {
		return br
	}
	zr, err := gzip.NewReader(br)
	if err != nil {
		t.Fatal(fmt.Errorf("layer gzip: %w", err))
	}
	return zr
}
