package cli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"lanlink/internal/keys"
	"lanlink/internal/wgconf"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

type result struct {
	code           int
	stdout, stderr string
}

// lanlink runs the command tree in-process. vars is the environment the
// commands see (nothing from the real one).
func lanlink(t *testing.T, vars map[string]string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	e := &env{
		stdin: strings.NewReader(""), stdout: &out, stderr: &errb,
		getenv: func(k string) string { return vars[k] },
	}
	code := run(context.Background(), e, args)
	return result{code, out.String(), errb.String()}
}

func (r result) want(t *testing.T, code int) result {
	t.Helper()
	if r.code != code {
		t.Fatalf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, code, r.stdout, r.stderr)
	}
	return r
}

func hashFile(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

func newKey(t *testing.T) wgtypes.Key {
	t.Helper()
	k, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k.PublicKey()
}

// TestWorkflow is the README's workflow end to end: init, keygen, site
// add for three offices, list, check, render.
func TestWorkflow(t *testing.T) {
	dir := t.TempDir()
	planFile := filepath.Join(dir, "etc", "network.toml")
	vars := map[string]string{"LANLINK_PLAN": planFile}

	r := lanlink(t, vars, "init", "--tunnel", "10.255.0.0/24", "--name", "acme").want(t, 0)
	if r.stdout != "" {
		t.Errorf("init printed %q on stdout; it asks for nothing", r.stdout)
	}
	if _, err := os.Stat(planFile); err != nil {
		t.Fatalf("init did not create the plan named by LANLINK_PLAN: %v", err)
	}

	pubs := map[string]string{}
	for _, site := range []string{"alpha", "beta", "gamma"} {
		keyFile := filepath.Join(dir, site, "private.key")
		r := lanlink(t, vars, "keygen", "--key", keyFile).want(t, 0)
		pub := strings.TrimSuffix(r.stdout, "\n")
		if strings.Contains(pub, "\n") {
			t.Fatalf("keygen printed more than the public key: %q", r.stdout)
		}
		priv, err := keys.Load(keyFile)
		if err != nil {
			t.Fatal(err)
		}
		if pub != priv.PublicKey().String() {
			t.Fatalf("keygen printed %q, not the public key of the file it wrote", pub)
		}
		if strings.Contains(r.stdout+r.stderr, priv.String()) {
			t.Fatal("keygen printed the private key")
		}
		if got := lanlink(t, vars, "pubkey", "--key", keyFile).want(t, 0).stdout; got != r.stdout {
			t.Errorf("pubkey printed %q, keygen %q", got, r.stdout)
		}
		pubs[site] = pub
	}

	addrs := map[string]string{}
	for _, s := range []struct{ name, lan, endpoint string }{
		{"alpha", "192.168.10.0/24", "203.0.113.10:51820"},
		{"beta", "192.168.20.0/24", "198.51.100.20:51820"},
		{"gamma", "192.168.30.0/24", ""},
	} {
		args := []string{"site", "add", s.name, "--public-key", pubs[s.name], "--lan", s.lan}
		if s.endpoint != "" {
			args = append(args, "--endpoint", s.endpoint)
		}
		addrs[s.name] = lanlink(t, vars, args...).want(t, 0).stdout
	}
	if diff := cmp.Diff(map[string]string{"alpha": "10.255.0.1\n", "beta": "10.255.0.2\n", "gamma": "10.255.0.3\n"}, addrs); diff != "" {
		t.Errorf("allocated addresses (-want +got):\n%s", diff)
	}

	list := lanlink(t, vars, "site", "list").want(t, 0).stdout
	wantList := `NAME   ADDRESS     ENDPOINT             LANS
alpha  10.255.0.1  203.0.113.10:51820   192.168.10.0/24
beta   10.255.0.2  198.51.100.20:51820  192.168.20.0/24
gamma  10.255.0.3  - (dials out)        192.168.30.0/24
`
	if diff := cmp.Diff(wantList, list); diff != "" {
		t.Errorf("site list (-want +got):\n%s", diff)
	}
	var sites []siteJSON
	if err := json.Unmarshal([]byte(lanlink(t, vars, "site", "list", "--json").want(t, 0).stdout), &sites); err != nil {
		t.Fatalf("site list --json: %v", err)
	}
	if len(sites) != 3 || sites[2].Name != "gamma" || sites[2].PublicKey != pubs["gamma"] || sites[2].Endpoint != "" {
		t.Errorf("site list --json: %+v", sites)
	}

	if got := lanlink(t, vars, "check").want(t, 0).stdout; got != "ok: 3 sites\n" {
		t.Errorf("check printed %q", got)
	}

	// render: a wg-quick file without a secret, with gamma reached
	// directly (alpha has an endpoint to be dialled... gamma dials in).
	out := lanlink(t, vars, "render", "alpha").want(t, 0).stdout
	f, err := wgconf.Parse([]byte(out))
	if err != nil {
		t.Fatalf("render output does not parse: %v\n%s", err, out)
	}
	if f.Interface.PrivateKey != nil || len(f.Peers) != 2 {
		t.Errorf("render alpha: private key embedded or %d peers, want none and 2:\n%s", len(f.Peers), out)
	}
	// With --key the key is embedded; it must be alpha's own.
	out = lanlink(t, vars, "render", "alpha", "--key", filepath.Join(dir, "alpha", "private.key")).want(t, 0).stdout
	if f, err = wgconf.Parse([]byte(out)); err != nil || f.Interface.PrivateKey == nil || f.Interface.PrivateKey.PublicKey().String() != pubs["alpha"] {
		t.Errorf("render --key: key missing or wrong (err %v)", err)
	}
	r = lanlink(t, vars, "render", "alpha", "--key", filepath.Join(dir, "beta", "private.key")).want(t, 1)
	if r.stdout != "" || !strings.Contains(r.stderr, "site alpha") {
		t.Errorf("render with another site's key: stdout %q, stderr %q", r.stdout, r.stderr)
	}

	// site set / remove.
	lanlink(t, vars, "site", "set", "beta", "--endpoint", "").want(t, 0)
	lanlink(t, vars, "site", "set", "gamma", "--endpoint", "192.0.2.30:51820", "--lan", "192.168.30.0/24", "--lan", "192.168.31.0/24", "--masquerade").want(t, 0)
	sites = nil
	if err := json.Unmarshal([]byte(lanlink(t, vars, "site", "list", "--json").want(t, 0).stdout), &sites); err != nil {
		t.Fatal(err)
	}
	if sites[1].Endpoint != "" || sites[2].Endpoint != "192.0.2.30:51820" || len(sites[2].LANs) != 2 || !sites[2].Masquerade {
		t.Errorf("after site set: %+v", sites)
	}
	lanlink(t, vars, "site", "remove", "beta").want(t, 0)
	if got := lanlink(t, vars, "check").want(t, 0).stdout; got != "ok: 2 sites\n" {
		t.Errorf("check after remove printed %q", got)
	}
	// A new site takes the lowest free address, beta's old one; alpha and
	// gamma keep theirs.
	got := lanlink(t, vars, "site", "add", "delta", "--public-key", newKey(t).String(), "--lan", "192.168.40.0/24").want(t, 0).stdout
	if got != "10.255.0.2\n" {
		t.Errorf("site add after remove allocated %q, want the freed 10.255.0.2", got)
	}
}

func TestPlanFlagAndEnv(t *testing.T) {
	dir := t.TempDir()
	envPlan, flagPlan := filepath.Join(dir, "env.toml"), filepath.Join(dir, "flag.toml")
	vars := map[string]string{"LANLINK_PLAN": envPlan}
	lanlink(t, vars, "init", "--tunnel", "10.1.0.0/24").want(t, 0)
	lanlink(t, vars, "-f", flagPlan, "init", "--tunnel", "10.2.0.0/24").want(t, 0)
	lanlink(t, vars, "init", "--plan", flagPlan, "--tunnel", "10.2.0.0/24").want(t, 1)
	for _, p := range []string{envPlan, flagPlan} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s not created: %v", p, err)
		}
	}
	r := lanlink(t, nil, "check", "--help").want(t, 0)
	if !strings.Contains(r.stdout, "/etc/lanlink/network.toml") {
		t.Errorf("help does not show the default plan path:\n%s", r.stdout)
	}
}

func TestInitRefusesOverwrite(t *testing.T) {
	planFile := filepath.Join(t.TempDir(), "network.toml")
	if err := os.WriteFile(planFile, []byte("# mine\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := lanlink(t, nil, "-f", planFile, "init", "--tunnel", "10.255.0.0/24").want(t, 1)
	if !strings.Contains(r.stderr, "already exists") {
		t.Errorf("stderr %q does not say why", r.stderr)
	}
	if b, _ := os.ReadFile(planFile); string(b) != "# mine\n" {
		t.Errorf("init changed an existing file: %q", b)
	}
}

func TestKeygenRefusesOverwrite(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "private.key")
	first := lanlink(t, nil, "keygen", "--key", keyFile).want(t, 0).stdout
	h := hashFile(t, keyFile)
	r := lanlink(t, nil, "keygen", "--key", keyFile).want(t, 1)
	if r.stdout != "" || !strings.Contains(r.stderr, "--force") {
		t.Errorf("second keygen: stdout %q stderr %q", r.stdout, r.stderr)
	}
	if hashFile(t, keyFile) != h {
		t.Fatal("refused keygen changed the key file")
	}
	second := lanlink(t, nil, "keygen", "--key", keyFile, "--force").want(t, 0).stdout
	if second == first {
		t.Error("keygen --force kept the old key")
	}
}

// TestFailedEditsLeaveFile: a failing add, set or remove must leave the
// plan byte for byte as it was, and a successful one keeps its mode.
func TestFailedEditsLeaveFile(t *testing.T) {
	dir := t.TempDir()
	planFile := filepath.Join(dir, "network.toml")
	vars := map[string]string{"LANLINK_PLAN": planFile}
	lanlink(t, vars, "init", "--tunnel", "10.255.0.0/24").want(t, 0)
	alpha := newKey(t).String()
	lanlink(t, vars, "site", "add", "alpha", "--public-key", alpha, "--lan", "192.168.10.0/24", "--endpoint", "203.0.113.1:51820").want(t, 0)
	if err := os.Chmod(planFile, 0o640); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		args []string
		code int
	}{
		{"add duplicate name", []string{"site", "add", "alpha", "--public-key", newKey(t).String(), "--lan", "192.168.20.0/24"}, 1},
		{"add duplicate key", []string{"site", "add", "beta", "--public-key", alpha, "--lan", "192.168.20.0/24"}, 1},
		{"add overlapping lan", []string{"site", "add", "beta", "--public-key", newKey(t).String(), "--lan", "192.168.10.128/25"}, 1},
		{"add bad key", []string{"site", "add", "beta", "--public-key", "nope", "--lan", "192.168.20.0/24"}, 1},
		{"add bad endpoint", []string{"site", "add", "beta", "--public-key", newKey(t).String(), "--lan", "192.168.20.0/24", "--endpoint", "no-port"}, 1},
		{"add address outside tunnel", []string{"site", "add", "beta", "--public-key", newKey(t).String(), "--lan", "192.168.20.0/24", "--address", "10.9.9.9"}, 1},
		{"add without lan", []string{"site", "add", "beta", "--public-key", newKey(t).String()}, 2},
		{"add without name", []string{"site", "add", "--public-key", newKey(t).String(), "--lan", "192.168.20.0/24"}, 2},
		{"set unknown site", []string{"site", "set", "zeta", "--endpoint", "192.0.2.1:1"}, 1},
		{"set bad lan", []string{"site", "set", "alpha", "--lan", "300.0.0.0/8"}, 1},
		{"set nothing", []string{"site", "set", "alpha"}, 2},
		{"set bad port flag", []string{"site", "set", "alpha", "--port", "70000"}, 2},
		{"remove unknown", []string{"site", "remove", "zeta"}, 1},
	}
	before := hashFile(t, planFile)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := lanlink(t, vars, tt.args...).want(t, tt.code)
			if r.stdout != "" {
				t.Errorf("failed edit printed %q on stdout", r.stdout)
			}
			if r.stderr == "" {
				t.Error("failed edit printed no error")
			}
			if hashFile(t, planFile) != before {
				t.Fatal("failed edit changed the plan file")
			}
		})
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("edits left files behind: %v", ents)
	}

	lanlink(t, vars, "site", "set", "alpha", "--port", "51821").want(t, 0)
	fi, err := os.Stat(planFile)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o640 {
		t.Errorf("edit changed the plan's mode to %04o, want 0640", fi.Mode().Perm())
	}
}

func TestEditThroughSymlink(t *testing.T) {
	dir := t.TempDir()
	real, link := filepath.Join(dir, "real.toml"), filepath.Join(dir, "link.toml")
	lanlink(t, nil, "-f", real, "init", "--tunnel", "10.255.0.0/24").want(t, 0)
	if err := os.Symlink(real, link); err != nil {
		t.Fatal(err)
	}
	lanlink(t, nil, "-f", link, "site", "add", "a", "--public-key", newKey(t).String(), "--lan", "192.168.1.0/24").want(t, 0)
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatalf("the symlink was replaced (%v)", err)
	}
	if b, _ := os.ReadFile(real); !strings.Contains(string(b), `name = "a"`) {
		t.Error("the file behind the symlink was not edited")
	}
}

// TestConcurrentEdits: edits running at once (a script adding offices in
// parallel) all land, each with its own tunnel address; none overwrites
// another's result.
func TestConcurrentEdits(t *testing.T) {
	planFile := filepath.Join(t.TempDir(), "network.toml")
	lanlink(t, nil, "-f", planFile, "init", "--tunnel", "10.255.0.0/24").want(t, 0)
	const n = 12
	var wg sync.WaitGroup
	results := make([]result, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var out, errb bytes.Buffer
			e := &env{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, getenv: func(string) string { return "" }}
			code := run(context.Background(), e, []string{"-f", planFile, "site", "add", fmt.Sprintf("office%d", i),
				"--public-key", newKey(t).String(), "--lan", fmt.Sprintf("192.168.%d.0/24", i),
				"--endpoint", fmt.Sprintf("198.51.100.%d:51820", i+1)})
			results[i] = result{code, out.String(), errb.String()}
		}()
	}
	wg.Wait()
	addrs := map[string]int{}
	for i, r := range results {
		if r.code != 0 {
			t.Fatalf("site add office%d: exit %d: %s", i, r.code, r.stderr)
		}
		a := strings.TrimSpace(r.stdout)
		if j, dup := addrs[a]; dup {
			t.Errorf("office%d and office%d were both given %s", j, i, a)
		}
		addrs[a] = i
	}
	var sites []siteJSON
	if err := json.Unmarshal([]byte(lanlink(t, nil, "-f", planFile, "site", "list", "--json").want(t, 0).stdout), &sites); err != nil {
		t.Fatal(err)
	}
	if len(sites) != n {
		t.Errorf("plan has %d sites after %d concurrent adds, want all of them", len(sites), n)
	}
	lanlink(t, nil, "-f", planFile, "check").want(t, 0)
}

func TestCheckReportsEveryProblem(t *testing.T) {
	planFile := filepath.Join(t.TempDir(), "network.toml")
	bad := `[network]
name = "acme"
tunnel = ["10.255.0.0/24"]

[[site]]
name = "alpha"
public_key = "not-a-key"
lan = ["192.168.10.0/24"]
address = ["10.255.0.1"]

[[site]]
name = "beta"
public_key = "` + newKey(t).String() + `"
lan = ["192.168.10.0/25"]
address = ["10.255.0.2"]
`
	if err := os.WriteFile(planFile, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	r := lanlink(t, nil, "-f", planFile, "check").want(t, 1)
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) < 2 {
		t.Fatalf("check printed %d problem(s), want both:\n%s", len(lines), r.stdout)
	}
	for _, want := range []string{planFile + ":7:", "public_key", planFile + ":14:", "lan"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("check output lacks %q:\n%s", want, r.stdout)
		}
	}

	r = lanlink(t, nil, "-f", filepath.Join(t.TempDir(), "missing.toml"), "check").want(t, 1)
	if !strings.Contains(r.stderr, "lanlink init") {
		t.Errorf("missing plan: stderr %q lacks the init hint", r.stderr)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"bogus"},
		{"render"},
		{"render", "a", "b"},
		{"check", "extra"},
		{"init"},
		{"init", "--tunnel", "10.0.0.0/33"},
		{"--no-such-flag", "check"},
		{"site", "list", "--json=maybe"},
		{"render", "a", "--json", "--key", "k"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			r := lanlink(t, map[string]string{"LANLINK_PLAN": filepath.Join(t.TempDir(), "p.toml")}, args...).want(t, 2)
			if r.stdout != "" || !strings.Contains(r.stderr, "lanlink") {
				t.Errorf("stdout %q, stderr %q", r.stdout, r.stderr)
			}
		})
	}
}

// TestRenderExamplePlan renders every site of the plan package's example
// plan (real parse and derivation) and compares with golden files.
func TestRenderExamplePlan(t *testing.T) {
	src, err := os.ReadFile(filepath.Join("..", "plan", "testdata", "example.toml"))
	if err != nil {
		t.Fatal(err)
	}
	planFile := filepath.Join(t.TempDir(), "example.toml")
	if err := os.WriteFile(planFile, src, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, site := range []string{"alpha", "beta", "gamma", "delta"} {
		t.Run(site, func(t *testing.T) {
			conf := lanlink(t, nil, "-f", planFile, "render", site, "--interface", "acme").want(t, 0).stdout
			golden(t, filepath.Join("testdata", "example-"+site+".conf"), conf)
			js := lanlink(t, nil, "-f", planFile, "render", site, "--json").want(t, 0).stdout
			golden(t, filepath.Join("testdata", "example-"+site+".json"), js)
		})
	}
}

func golden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s differs (-want +got); rerun with -update if intended:\n%s", path, diff)
	}
}

// LANLINK_KEY is the key file every command uses without --key (the lab
// sets it on its gateways); --key still wins.
func TestKeyFromEnvironment(t *testing.T) {
	dir := t.TempDir()
	envKey, flagKey := filepath.Join(dir, "env.key"), filepath.Join(dir, "flag.key")
	vars := map[string]string{"LANLINK_KEY": envKey}
	pub := lanlink(t, vars, "keygen").want(t, 0).stdout
	if _, err := os.Stat(envKey); err != nil {
		t.Fatalf("keygen without --key did not write $LANLINK_KEY: %v", err)
	}
	if got := lanlink(t, vars, "pubkey").want(t, 0).stdout; got != pub {
		t.Errorf("pubkey with $LANLINK_KEY = %q, want %q", got, pub)
	}
	other := lanlink(t, vars, "keygen", "--key", flagKey).want(t, 0).stdout
	if got := lanlink(t, vars, "pubkey", "--key", flagKey).want(t, 0).stdout; got != other || got == pub {
		t.Errorf("pubkey --key = %q, want the flag's key %q", got, other)
	}
}
