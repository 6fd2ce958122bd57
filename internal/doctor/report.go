package doctor

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

var marks = map[Status]string{OK: "✓", Warn: "!", Fail: "✗", Skip: "-"}

// WriteText writes one line per check — mark, title, detail — with the
// fix indented under it, then a summary line.
func WriteText(w io.Writer, rs []Result) {
	counts := map[Status]int{}
	for _, r := range rs {
		counts[r.Status]++
		fmt.Fprintf(w, "%s %s [%s]", marks[r.Status], r.Title, r.ID)
		if r.Detail != "" {
			fmt.Fprintf(w, ": %s", r.Detail)
		}
		fmt.Fprintln(w)
		if r.Fix != "" && (r.Status == Fail || r.Status == Warn) {
			for _, line := range strings.Split(r.Fix, "\n") {
				fmt.Fprintf(w, "    %s\n", line)
			}
		}
	}
	fmt.Fprintf(w, "\n%d ok, %d warnings, %d failed, %d skipped\n", counts[OK], counts[Warn], counts[Fail], counts[Skip])
}

// Report is the --json output.
type Report struct {
	OK     bool     `json:"ok"` // no check failed
	Checks []Result `json:"checks"`
}

// WriteJSON writes the results as a Report.
func WriteJSON(w io.Writer, rs []Result) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(Report{OK: !Failed(rs), Checks: rs})
}
