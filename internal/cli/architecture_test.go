package cli

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/logdoctor/logdoctor/internal/testenv"
)

const modulePath = "github.com/logdoctor/logdoctor"

// moduleImports maps each package directory of the module (relative, with
// slashes: "pkg/pcap") to the module packages its non-test files import.
func moduleImports(t *testing.T) map[string]map[string]bool {
	t.Helper()
	root := testenv.ModuleRoot(t)
	fset := token.NewFileSet()
	deps := map[string]map[string]bool{}
	for _, top := range []string{"cmd", "internal", "pkg", "bench"} {
		err := filepath.WalkDir(filepath.Join(root, top), func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && d.Name() == "testdata" {
				return filepath.SkipDir
			}
			if d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
				return nil
			}
			f, err := parser.ParseFile(fset, p, nil, parser.ImportsOnly)
			if err != nil {
				return err
			}
			rel, err := filepath.Rel(root, filepath.Dir(p))
			if err != nil {
				return err
			}
			pkg := filepath.ToSlash(rel)
			if deps[pkg] == nil {
				deps[pkg] = map[string]bool{}
			}
			for _, is := range f.Imports {
				ip, _ := strconv.Unquote(is.Path.Value)
				if rest, ok := strings.CutPrefix(ip, modulePath+"/"); ok {
					deps[pkg][rest] = true
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return deps
}

// under reports whether pkg is dir or inside it.
func under(pkg, dir string) bool { return pkg == dir || strings.HasPrefix(pkg, dir+"/") }

// isTestHelper: packages that exist for tests.
func isTestHelper(pkg string) bool {
	switch pkg {
	case "internal/testenv", "internal/sockettest", "internal/shippertest", "internal/interop":
		return true
	}
	return strings.HasSuffix(path.Base(pkg), "test")
}

// TestImportRules holds the rules of direction in docs/ARCHITECTURE.md, so
// a new import that breaks one fails here instead of in review.
func TestImportRules(t *testing.T) {
	deps := moduleImports(t)
	if len(deps["internal/cli"]) == 0 || !deps["pkg/udpfrag"]["pkg/pcap"] {
		t.Fatalf("import graph looks wrong (internal/cli imports %v): the walk found nothing", deps["internal/cli"])
	}
	// rule 2: protocols, sources and engines know none of their users
	forbidden := []struct{ from, to string }{
		{"pkg/forward", "pkg/forwardprobe"},
		{"pkg/forward", "pkg/pipeline"},
		{"pkg/forward", "pkg/smoke"},
		{"pkg/essim", "pkg/esprobe"},
		{"pkg/essim", "pkg/pipeline"},
		{"pkg/essim", "pkg/smoke"},
		{"pkg/pcap", "pkg/udpfrag"},
		{"pkg/pcap", "pkg/udpprobe"},
		{"pkg/pipeline", "pkg/essim"},
		// rule 6: the Elasticsearch clients share esclient, never each other
		{"pkg/esprobe", "pkg/smoke"},
		{"pkg/esprobe", "pkg/pipeline"},
		{"pkg/smoke", "pkg/esprobe"},
		{"pkg/pipeline", "pkg/esprobe"},
		{"pkg/pipeline", "pkg/smoke"},
	}
	// rule 4: leaves
	leaves := []string{"pkg/report", "pkg/pcap", "pkg/pipeline/buffer",
		"internal/clip", "internal/jsonenc", "internal/reopen", "internal/buildinfo"}

	var pkgs []string
	for p := range deps {
		pkgs = append(pkgs, p)
	}
	sort.Strings(pkgs)
	for _, from := range pkgs {
		for to := range deps[from] {
			// rule 1
			if under(to, "internal/cli") && from != "cmd/logdoctor" {
				t.Errorf("%s imports %s: only cmd/logdoctor may import the command layer", from, to)
			}
			for _, f := range forbidden {
				if under(from, f.from) && under(to, f.to) && !isTestHelper(from) {
					t.Errorf("%s imports %s: %s must not know %s", from, to, f.from, f.to)
				}
			}
			for _, l := range leaves {
				if from == l {
					t.Errorf("%s imports %s: it is a leaf and imports no logdoctor package", from, to)
				}
			}
			// rule 5
			if isTestHelper(to) && !isTestHelper(from) {
				t.Errorf("%s imports the test helper %s outside its tests", from, to)
			}
		}
	}
}
