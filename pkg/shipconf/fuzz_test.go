package shipconf

import (
	"os"
	"path/filepath"
	"testing"
)

// fuzzFiles gives a fuzzed main file something to include, itself
// included (a cycle), and a file that does not exist.
func fuzzFiles(main string, src []byte) MapFiles {
	return MapFiles{
		main:            string(src),
		"/f/inc.conf":   "<source>\n  @type forward\n</source>\n[INPUT]\n    Name dummy\n",
		"/f/inc.yaml":   "pipeline:\n  inputs:\n    - name: dummy\n",
		"/f/d/one.conf": "@include ../main.conf\n@INCLUDE main.conf\n",
	}
}

func addSeeds(f *testing.F, dirs ...string) {
	for _, dir := range dirs {
		paths, _ := filepath.Glob(filepath.Join(dir, "*"))
		for _, p := range paths {
			if b, err := os.ReadFile(p); err == nil {
				f.Add(b)
			}
		}
	}
}

// checkModel asserts what must hold for any input: no panic (the fuzzer
// catches that), positions inside the file, bounded results.
func checkModel(t *testing.T, c *Config, src []byte) {
	// YAML also breaks lines at a lone \r (go-yaml counts it).
	lines := 1
	for i, b := range src {
		if b == '\n' || b == '\r' && (i+1 == len(src) || src[i+1] != '\n') {
			lines++
		}
	}
	for _, p := range c.Problems {
		if p.Pos.File == "/f/main.conf" || p.Pos.File == "/f/main.yaml" {
			if p.Pos.Line < 1 || p.Pos.Line > lines+1 {
				t.Fatalf("problem outside the file (%d lines): %v", lines, p)
			}
		}
		if p.Msg == "" {
			t.Fatalf("problem without a message: %+v", p)
		}
	}
	for _, pl := range c.Plugins {
		if pl.Section == nil {
			t.Fatalf("plugin without a section: %+v", pl)
		}
	}
	_ = c.Routes()
}

func FuzzFluentd(f *testing.F) {
	addSeeds(f, "testdata/fluentd/valid", "testdata/fluentd/invalid")
	f.Add([]byte("@include inc.conf\n@include d/*.conf\n<match **>\n  @type forward\n</match>\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		c, err := Parse("/f/main.conf", src, Options{Format: FormatFluentd, Files: fuzzFiles("/f/main.conf", src), MaxFiles: 20})
		if err != nil {
			t.Fatal(err)
		}
		checkModel(t, c, src)
		for _, p := range c.Plugins {
			_ = CompileFluentd(p.Match).Match("a.b.c")
			_ = CompileFluentd(p.Match).Samples()
		}
	})
}

func FuzzFluentdYAML(f *testing.F) {
	f.Add([]byte("config:\n  - source:\n      $type: forward\n  - !include inc.yaml\n"))
	f.Add([]byte("system:\n  x: &a [*a]\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		c, err := Parse("/f/main.yaml", src, Options{Format: FormatFluentd, Files: fuzzFiles("/f/main.yaml", src), MaxFiles: 20})
		if err != nil {
			t.Fatal(err)
		}
		checkModel(t, c, src)
	})
}

func FuzzFluentBit(f *testing.F) {
	addSeeds(f, "testdata/fluentbit/valid", "testdata/fluentbit/invalid")
	f.Add([]byte("@INCLUDE inc.conf\n@SET a=b\n[INPUT]\n    Name ${a}\n\t\tTag x\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		c, err := Parse("/f/main.conf", src, Options{Format: FormatFluentBit, Files: fuzzFiles("/f/main.conf", src), MaxFiles: 20})
		if err != nil {
			t.Fatal(err)
		}
		checkModel(t, c, src)
	})
}

func FuzzFluentBitYAML(f *testing.F) {
	f.Add([]byte("includes:\n  - inc.yaml\nenv:\n  A: b\npipeline:\n  outputs:\n    - name: es\n      match: ${A}\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		c, err := Parse("/f/main.yaml", src, Options{Format: FormatFluentBit, Files: fuzzFiles("/f/main.yaml", src), MaxFiles: 20})
		if err != nil {
			t.Fatal(err)
		}
		checkModel(t, c, src)
	})
}

func FuzzFluentdPattern(f *testing.F) {
	for _, s := range []string{"**", "a.**", "a.*.b", "{a,b}.**", "/a.+/", "a.**.b", "\\*.x", "{a,{b,c}}"} {
		f.Add(s, "a.b.c")
	}
	f.Fuzz(func(t *testing.T, pattern, tag string) {
		p := CompileFluentd(pattern)
		_ = p.Match(tag)
		for _, s := range p.Samples() {
			_ = p.Match(s)
		}
		_ = FluentBitMatch(pattern, tag)
	})
}
