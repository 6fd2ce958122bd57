package plan

import (
	"fmt"
	"sort"
	"strings"
)

// Problem is one thing wrong with a plan, located and with a suggested fix.
type Problem struct {
	File string
	// Line is 1-based; 0 when the problem has no place in the file (for
	// example a value given to AddSite or New on the command line).
	Line int
	// Site names the [[site]] the problem is in: its name, or "#N" (the Nth
	// site in file order) when the site has no usable name. "" for
	// [network] and for the file as a whole.
	Site  string
	Field string // TOML key, e.g. "lan"; "" when not about one field
	Msg   string
	Fix   string // how to fix it; may be ""
}

func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		fmt.Fprintf(&b, ":%d", p.Line)
	}
	b.WriteString(": ")
	if p.Site != "" {
		fmt.Fprintf(&b, "site %q: ", p.Site)
	}
	if p.Field != "" {
		b.WriteString(p.Field)
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
	if p.Fix != "" {
		b.WriteString("; ")
		b.WriteString(p.Fix)
	}
	return b.String()
}

// Problems is every problem found in a plan (not just the first), sorted by
// line. It is the error returned by Parse, Load, New and the edit functions
// when the plan is invalid; callers can errors.As it to list the problems.
type Problems []Problem

// Error formats one problem per line:
//
//	FILE:LINE: site "alpha": lan: 192.168.1.5/24 has host bits set; use 192.168.1.0/24
func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// sorted orders problems by line, keeping discovery order within a line;
// problems without a line (0) go last since they are about the whole file
// or about edit inputs.
func (ps Problems) sorted() Problems {
	sort.SliceStable(ps, func(i, j int) bool {
		li, lj := ps[i].Line, ps[j].Line
		if li == 0 || lj == 0 {
			return li != 0 && lj == 0
		}
		return li < lj
	})
	return ps
}

// closest returns the candidate nearest to s by edit distance, or "" when
// none is close enough to be a plausible typo.
func closest(s string, candidates []string) string {
	best, bestD := "", 1<<30
	for _, c := range candidates {
		if d := editDistance(strings.ToLower(s), c); d < bestD {
			best, bestD = c, d
		}
	}
	if bestD <= 2 || (bestD <= len(s)/2 && bestD < len(best)) {
		return best
	}
	return ""
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
