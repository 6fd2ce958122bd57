package plan

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
)

// The plan is read in two passes. go-toml's decoder is the judge of what is
// valid TOML (it checks duplicate keys and table redefinitions, which the
// low-level parser does not), but it stops at the first error and forgets
// where values were. So after it accepts the file, the unstable parser walks
// the document again and records every table and key with its line and
// byte range: the line feeds the problem messages, the byte ranges let the
// edit functions change one value and leave every other byte alone.

type tableKind int

const (
	tableRoot    tableKind = iota // key/values before the first header
	tableNetwork                  // [network]
	tableSite                     // [[site]]
	tableOther                    // anything else (reported as unknown)
)

type rawValue struct {
	kind  unstable.Kind
	text  string     // strings unescaped; other scalars as written
	items []rawValue // for arrays, without comments
	line  int        // 0 when the parser gives no position (arrays)
}

type rawField struct {
	key      string // dotted keys joined with "."
	line     int
	start    int // offset where `key = value` begins
	valStart int // offset where the value begins
	end      int // offset just past the value
	val      rawValue
}

type rawTable struct {
	kind     tableKind
	header   string // header key as written, dotted parts joined with "."
	array    bool   // [[header]]
	line     int    // line of the header (0 for the root table)
	hdrStart int    // offset of the start of the header line
	fields   []rawField
}

func (t *rawTable) field(key string) *rawField {
	for i := range t.fields {
		if t.fields[i].key == key {
			return &t.fields[i]
		}
	}
	return nil
}

type rawDoc struct {
	data         []byte
	lineStarts   []int // offset of the first byte of each line
	root         *rawTable
	tables       []*rawTable // in file order, root excluded
	network      *rawTable
	sites        []*rawTable
	commentLines map[int]bool // lines that hold nothing but a comment
}

// lineOf returns the 1-based line of a byte offset.
func (d *rawDoc) lineOf(off int) int {
	return sort.Search(len(d.lineStarts), func(i int) bool { return d.lineStarts[i] > off })
}

// lineStart returns the offset of the start of the 1-based line n.
func (d *rawDoc) lineStart(n int) int {
	if n < 1 {
		return 0
	}
	if n > len(d.lineStarts) {
		return len(d.data)
	}
	return d.lineStarts[n-1]
}

// lineEnd returns the offset just past the newline ending the line that
// holds off (or len(data) on the last line).
func (d *rawDoc) lineEnd(off int) int {
	return d.lineStart(d.lineOf(off) + 1)
}

func (d *rawDoc) blankLine(n int) bool {
	if n < 1 || n > len(d.lineStarts) {
		return false
	}
	return strings.TrimSpace(string(d.data[d.lineStart(n):d.lineStart(n+1)])) == ""
}

// siteNamed returns the index of the first [[site]] whose name is the
// string s, or -1.
func (d *rawDoc) siteNamed(s string) int {
	for i, t := range d.sites {
		if f := t.field("name"); f != nil && f.val.kind == unstable.String && f.val.text == s {
			return i
		}
	}
	return -1
}

// readDoc checks that data is TOML and indexes it. The returned problems
// are only about the TOML syntax; the doc is nil when there are any.
func readDoc(filename string, data []byte) (*rawDoc, Problems) {
	var anything map[string]any
	if err := toml.Unmarshal(data, &anything); err != nil {
		p := Problem{File: filename, Msg: "not valid TOML: " + strings.TrimPrefix(err.Error(), "toml: "),
			Fix: "fix the syntax at this line (strings need double quotes, lists need [ ])"}
		var de *toml.DecodeError
		if errors.As(err, &de) {
			p.Line, _ = de.Position()
		}
		return nil, Problems{p}
	}

	d := &rawDoc{data: data, lineStarts: []int{0}, commentLines: map[int]bool{}}
	for i, c := range data {
		if c == '\n' && i+1 < len(data) {
			d.lineStarts = append(d.lineStarts, i+1)
		}
	}
	d.root = &rawTable{kind: tableRoot}
	cur := d.root

	var p unstable.Parser
	p.KeepComments = true
	p.Reset(data)
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Comment:
			d.commentLines[d.lineOf(int(e.Raw.Offset))] = true
		case unstable.Table, unstable.ArrayTable:
			name, first, _ := keyOf(e.Key())
			t := &rawTable{header: name, array: e.Kind == unstable.ArrayTable}
			t.line = d.lineOf(first)
			t.hdrStart = d.lineStart(t.line)
			switch {
			case name == "network" && !t.array:
				t.kind = tableNetwork
				d.network = t
			case name == "site" && t.array:
				t.kind = tableSite
				d.sites = append(d.sites, t)
			default:
				t.kind = tableOther
			}
			d.tables = append(d.tables, t)
			cur = t
		case unstable.KeyValue:
			name, first, keyEnd := keyOf(e.Key())
			f := rawField{key: name, start: first, end: int(e.Raw.Offset + e.Raw.Length)}
			f.line = d.lineOf(first)
			f.valStart = keyEnd
			for f.valStart < len(data) && (data[f.valStart] == ' ' || data[f.valStart] == '\t' || data[f.valStart] == '=') {
				f.valStart++
			}
			f.val = d.value(e.Value())
			cur.fields = append(cur.fields, f)
		}
	}
	if err := p.Error(); err != nil {
		// The decoder accepted the file, so the parser should too; if they
		// ever disagree, refuse rather than edit text we do not understand.
		return nil, Problems{{File: filename, Msg: fmt.Sprintf("not valid TOML: %v", err)}}
	}
	return d, nil
}

// keyOf joins a (possibly dotted) key and returns where it starts and ends.
func keyOf(it unstable.Iterator) (name string, start, end int) {
	var parts []string
	start = -1
	for it.Next() {
		k := it.Node()
		parts = append(parts, string(k.Data))
		if start < 0 {
			start = int(k.Raw.Offset)
		}
		end = int(k.Raw.Offset + k.Raw.Length)
	}
	return strings.Join(parts, "."), max(start, 0), end
}

func (d *rawDoc) value(n *unstable.Node) rawValue {
	v := rawValue{kind: n.Kind}
	switch n.Kind {
	case unstable.Array:
		it := n.Children()
		for it.Next() {
			if c := it.Node(); c.Kind != unstable.Comment {
				v.items = append(v.items, d.value(c))
			}
		}
	case unstable.InlineTable:
	default:
		v.text = string(n.Data)
		v.line = d.lineOf(int(n.Raw.Offset))
	}
	return v
}
