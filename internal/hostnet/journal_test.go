package hostnet

import (
	"net/netip"
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// prefixEqual lets cmp compare netip.Prefix, whose fields are unexported.
var prefixEqual = cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })

func TestJournalRoundTrip(t *testing.T) {
	dir := t.TempDir() + "/state" // does not exist yet: writeJournal creates it
	if j, err := readJournal(dir, "lanlink0"); err != nil || j != nil {
		t.Fatalf("readJournal with no journal = %v, %v; want nil, nil", j, err)
	}
	want := &journal{
		Interface: "lanlink0",
		Addresses: pfx("10.255.0.1/24"),
		Routes:    pfx("192.168.20.0/24", "fd00:20::/64"),
		Forward:   []forwardRecord{{Family: IPv4, Sysctl: "net.ipv4.ip_forward", Previous: "0", Set: "1"}},
	}
	if err := writeJournal(dir, want); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(journalPath(dir, "lanlink0"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("journal mode = %v, want 0600", st.Mode().Perm())
	}
	got, err := readJournal(dir, "lanlink0")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got, prefixEqual); diff != "" {
		t.Errorf("journal round trip mismatch (-want +got):\n%s", diff)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("state dir holds %d files, want only the journal (no temp files left)", len(entries))
	}
	if err := removeJournal(dir, "lanlink0"); err != nil {
		t.Fatal(err)
	}
	if err := removeJournal(dir, "lanlink0"); err != nil {
		t.Errorf("removing a missing journal: %v, want nil", err)
	}
}
