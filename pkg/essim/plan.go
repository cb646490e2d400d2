package essim

import (
	"slices"

	"github.com/logdoctor/logdoctor/pkg/essim/store"
)

// plan finds the candidate documents of a query through the term and id
// indices instead of reading every document.
type plan interface {
	// positionsLocked returns the ascending positions in ix of the
	// documents that satisfy the plan (deleted ones may be among them);
	// callers hold the store's read lock at least.
	positionsLocked(s *store.Store, ix *store.Index) ([]int32, error)
	// matches checks a parsed document, for a plan nested in a clause
	// that did not narrow the candidates.
	matches(d map[string]any) bool
}

// termsPlan: field holds one of the values (term, terms, match).
type termsPlan struct {
	field string
	keys  []string        // plain forms of the values
	set   map[string]bool // the same, for matches
}

func newTermsPlan(field string, vals []any) termsPlan {
	p := termsPlan{field: field, keys: make([]string, len(vals)), set: make(map[string]bool, len(vals))}
	for i, v := range vals {
		p.keys[i] = plain(v)
		p.set[p.keys[i]] = true
	}
	return p
}

func (p termsPlan) positionsLocked(s *store.Store, ix *store.Index) ([]int32, error) {
	return s.PostingsLocked(ix, p.field, p.keys, func(src []byte) []string {
		vals := fieldValues(parseDoc(src), p.field)
		keys := make([]string, len(vals))
		for i, v := range vals {
			keys[i] = plain(v)
		}
		return keys
	})
}

func (p termsPlan) matches(d map[string]any) bool {
	for _, v := range fieldValues(d, p.field) {
		if p.set[plain(v)] {
			return true
		}
	}
	return false
}

// idsPlan: the _id is one of these.
type idsPlan []string

func (p idsPlan) positionsLocked(s *store.Store, ix *store.Index) ([]int32, error) {
	var out []int32
	for _, id := range p {
		p, ok, err := s.PositionLocked(ix, id)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

func (p idsPlan) matches(d map[string]any) bool {
	id, _ := d["\x00id"].(string)
	return slices.Contains(p, id)
}

// nonePlan: match_none.
type nonePlan struct{}

func (nonePlan) positionsLocked(*store.Store, *store.Index) ([]int32, error) { return nil, nil }
func (nonePlan) matches(map[string]any) bool                                 { return false }

// andPlan: every plan holds (bool must and filter).
type andPlan []plan

func (p andPlan) positionsLocked(s *store.Store, ix *store.Index) ([]int32, error) {
	var out []int32
	for i, q := range p {
		pos, err := q.positionsLocked(s, ix)
		if err != nil {
			return nil, err
		}
		if i == 0 {
			out = pos
			continue
		}
		out = intersect(out, pos)
		if len(out) == 0 {
			break
		}
	}
	return out, nil
}

func (p andPlan) matches(d map[string]any) bool {
	for _, q := range p {
		if !q.matches(d) {
			return false
		}
	}
	return true
}

// orPlan: one of the plans holds (bool with only should clauses).
type orPlan []plan

func (p orPlan) positionsLocked(s *store.Store, ix *store.Index) ([]int32, error) {
	var out []int32
	for _, q := range p {
		pos, err := q.positionsLocked(s, ix)
		if err != nil {
			return nil, err
		}
		out = append(out, pos...)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

func (p orPlan) matches(d map[string]any) bool {
	for _, q := range p {
		if q.matches(d) {
			return true
		}
	}
	return false
}

// intersect returns the positions in both ascending lists.
func intersect(a, b []int32) []int32 {
	var out []int32
	for i, j := 0, 0; i < len(a) && j < len(b); {
		switch {
		case a[i] < b[j]:
			i++
		case a[i] > b[j]:
			j++
		default:
			out = append(out, a[i])
			i++
			j++
		}
	}
	return out
}
