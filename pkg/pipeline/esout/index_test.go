package esout

import "testing"

func TestIndexTemplate(t *testing.T) {
	const sec = 1700000000 // 2023-11-14T22:13:20Z
	cases := []struct{ tmpl, tag, want string }{
		{"", "App.Web", "logs-app.web-2023.11.14"},
		{"logs-{tag}-{yyyy.MM.dd}", "a b/c*", "logs-a_b_c_-2023.11.14"},
		{"fixed", "x", "fixed"},
		{"{tag}-{yyyy-MM}-{HH}", "k", "k-2023-11-22"},
		{"x-{yy.MM}", "", "x-23.11"},
		{"{tag}", "", "untagged"},
	}
	for _, c := range cases {
		it, err := ParseIndexTemplate(c.tmpl)
		if err != nil {
			t.Fatalf("%q: %v", c.tmpl, err)
		}
		if got := it.Name(c.tag, sec); got != c.want {
			t.Errorf("%q %q: got %q want %q", c.tmpl, c.tag, got, c.want)
		}
	}
	for _, bad := range []string{"logs-{foo}", "logs-{tag", "logs-}", "UPPER", "-x", "a,b"} {
		if _, err := ParseIndexTemplate(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
