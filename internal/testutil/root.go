// Package testutil holds helpers shared by lanlink's tests. It is imported
// only from _test.go files.
package testutil

import (
	"os"
	"testing"
)

// RequireRoot skips t when not running as root, with the reason, except
// under CI (CI=true), where a test that cannot run is a failure: CI runs as
// root precisely so that the end-to-end tests are exercised.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("needs root, and CI=true requires every test to run: run the suite as root")
	}
	t.Skip("needs root (network namespaces, TUN, netlink): run as root to exercise it")
}
