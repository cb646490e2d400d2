package cli

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/logdoctor/logdoctor/internal/testenv"
)

// TestEveryFindingIDIsDocumented holds the promise that finding ids are
// stable, documented API: every string constant named Finding* in the code
// must have a "### id" section somewhere under docs/.
func TestEveryFindingIDIsDocumented(t *testing.T) {
	root := testenv.ModuleRoot(t)
	ids := map[string]string{}
	fset := token.NewFileSet()
	for _, dir := range []string{"pkg", "internal"} {
		err := filepath.WalkDir(filepath.Join(root, dir), func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
				return err
			}
			f, err := parser.ParseFile(fset, p, nil, 0)
			if err != nil {
				return err
			}
			ast.Inspect(f, func(n ast.Node) bool {
				vs, ok := n.(*ast.ValueSpec)
				if !ok {
					return true
				}
				for i, name := range vs.Names {
					if !strings.HasPrefix(name.Name, "Finding") || i >= len(vs.Values) {
						continue
					}
					if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
						v, _ := strconv.Unquote(lit.Value)
						ids[v] = p
					}
				}
				return true
			})
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	var docs strings.Builder
	err := filepath.WalkDir(filepath.Join(root, "docs"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".md") {
			return err
		}
		b, err := os.ReadFile(p)
		docs.Write(b)
		docs.WriteString("\n")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for id, src := range ids {
		if !strings.Contains(docs.String(), "### "+id+"\n") {
			t.Errorf("finding id %q (declared in %s) has no '### %s' section under docs/", id, src, id)
		}
	}
}
