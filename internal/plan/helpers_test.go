package plan

import (
	"errors"
	"net/netip"
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// Public keys of the testdata sites (see testdata/README.md).
const (
	keyAlpha = "pOCSkrZRwni5dyxWn1+puxPZBrRqtoyd+dwrRAn4ogk="
	keyBeta  = "zo060cy2M+x7cMF4FKXHbs0CloUFDTRHRboFhw5YfVk="
	keyGamma = "Xf7dO2vUf2+ijuFdlp1bsOpTd01Ii9r53xxuASSz7yI="
	keyDelta = "rAGyIJ6GNU+4UyN7XeD0+rE8f8v0M6YcAZNpYX/s8Qs="
)

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustParse(t testing.TB, data []byte) *Plan {
	t.Helper()
	p, err := Parse("test.toml", data)
	if err != nil {
		t.Fatalf("Parse: %v\n--- input:\n%s", err, data)
	}
	return p
}

func problemsOf(t testing.TB, err error) Problems {
	t.Helper()
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("error %v (%T) is not Problems", err, err)
	}
	return ps
}

func ptr[T any](v T) *T { return &v }

// cmpOpts compares plan values: netip types are comparable but have
// unexported fields, and Plan has an unexported lookup index.
var cmpOpts = cmp.Options{
	cmpopts.EquateComparable(netip.Prefix{}, netip.Addr{}),
	cmpopts.IgnoreUnexported(Plan{}),
}
