package testutil

import (
	"crypto/rand"
	"encoding/hex"
	"os/exec"
	"testing"
)

// Netns creates a network namespace named prefix-<8 random hex digits>
// (keep prefix to 6 characters: the name may end up in interface names)
// and deletes it when the test ends. It needs root (RequireRoot).
func Netns(t testing.TB, prefix string) string {
	t.Helper()
	RequireRoot(t)
	b := make([]byte, 4)
	rand.Read(b)
	name := prefix + "-" + hex.EncodeToString(b)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	return name
}
