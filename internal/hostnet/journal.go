package hostnet

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
)

// journal lists what a Host changed and must undo. It is written before an
// addition reaches the kernel and after a removal did, so after a crash it
// may name things that are not there (undo tolerates that) but never misses
// one that is.
type journal struct {
	Interface string          `json:"interface"`
	Addresses []netip.Prefix  `json:"addresses,omitempty"` // added by us, so ours to remove
	Routes    []netip.Prefix  `json:"routes,omitempty"`    // in the main table, dev Interface, proto RouteProtocol
	Forward   []forwardRecord `json:"forwarding,omitempty"`
}

// forwardRecord is a sysctl we wrote: Previous goes back only while the
// sysctl still holds Set, otherwise someone else changed it since.
type forwardRecord struct {
	Family   Family `json:"family"`
	Sysctl   string `json:"sysctl"`
	Previous string `json:"previous"`
	Set      string `json:"set"`
}

func (j *journal) clone() *journal {
	c := *j
	c.Addresses = slices.Clone(j.Addresses)
	c.Routes = slices.Clone(j.Routes)
	c.Forward = slices.Clone(j.Forward)
	return &c
}

func (j *journal) empty() bool {
	return len(j.Addresses) == 0 && len(j.Routes) == 0 && len(j.Forward) == 0
}

func (j *journal) forward(f Family) (forwardRecord, bool) {
	for _, r := range j.Forward {
		if r.Family == f {
			return r, true
		}
	}
	return forwardRecord{}, false
}

func remove[T comparable](s []T, v T) []T {
	return slices.DeleteFunc(s, func(x T) bool { return x == v })
}

func addOnce[T comparable](s []T, v T) []T {
	if slices.Contains(s, v) {
		return s
	}
	return append(s, v)
}

func journalPath(dir, iface string) string {
	return filepath.Join(dir, iface+".json")
}

// readJournal returns (nil, nil) when there is none.
func readJournal(dir, iface string) (*journal, error) {
	b, err := os.ReadFile(journalPath(dir, iface))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read host network journal: %w", err)
	}
	var j journal
	if err := json.Unmarshal(b, &j); err != nil {
		return nil, fmt.Errorf("parse host network journal %s (delete it after checking ip addr/ip route by hand): %w", journalPath(dir, iface), err)
	}
	if j.Interface == "" {
		j.Interface = iface
	}
	return &j, nil
}

// writeJournal replaces the journal atomically (temp file + rename), so a
// crash leaves the old or the new one, never half of one.
func writeJournal(dir string, j *journal) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create state directory: %w", err)
	}
	b, err := json.MarshalIndent(j, "", "  ")
	if err != nil {
		return fmt.Errorf("encode host network journal: %w", err)
	}
	f, err := os.CreateTemp(dir, "."+j.Interface+".json.*")
	if err != nil {
		return fmt.Errorf("write host network journal: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after a successful rename
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("write host network journal: %w", err)
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("write host network journal: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write host network journal: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write host network journal: %w", err)
	}
	if err := os.Rename(tmp, journalPath(dir, j.Interface)); err != nil {
		return fmt.Errorf("write host network journal: %w", err)
	}
	return nil
}

func removeJournal(dir, iface string) error {
	err := os.Remove(journalPath(dir, iface))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove host network journal: %w", err)
	}
	return nil
}
