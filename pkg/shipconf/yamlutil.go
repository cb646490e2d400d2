package shipconf

import (
	"regexp"
	"strconv"

	"go.yaml.in/yaml/v3"
)

// yamlFailingLine finds the first line at which the document stops being
// valid YAML: go-yaml reports where the enclosing block started, not
// where the problem is, so the smallest failing prefix (in whole lines) is
// searched for. 0 when it cannot tell.
func yamlFailingLine(src []byte) int {
	starts := []int{0}
	for i, c := range src {
		if c == '\n' && i+1 < len(src) {
			starts = append(starts, i+1)
		}
	}
	n := len(starts)
	if n > 100000 {
		return 0
	}
	prefixFails := func(k int) bool { // the first k lines
		end := len(src)
		if k < n {
			end = starts[k]
		}
		var node yaml.Node
		return yaml.Unmarshal(src[:end], &node) != nil
	}
	if !prefixFails(n) {
		return 0
	}
	lo, hi := 1, n // smallest k in [lo, hi] with prefixFails(k)
	for lo < hi {
		mid := (lo + hi) / 2
		if prefixFails(mid) {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo
}

var yamlLine = regexp.MustCompile(`line (\d+)`)

// yamlErrLine finds the line number in a go-yaml error message (the
// library gives no structured position for syntax errors).
func yamlErrLine(msg string) int {
	m := yamlLine.FindStringSubmatch(msg)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// maxYAMLNodes bounds the walk over a YAML document: aliases can make a
// small file describe an exponentially large tree ("billion laughs").
const maxYAMLNodes = 200000

// deref follows an alias to the node it names.
func deref(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 8; i++ {
		n = n.Alias
	}
	return n
}
