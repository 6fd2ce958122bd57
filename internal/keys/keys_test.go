package keys

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"
)

func TestGenerateLoad(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "etc", "lanlink")
	path := filepath.Join(dir, "private.key")
	pub, err := Generate(path, false)
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	for p, want := range map[string]fs.FileMode{dir: 0o700, path: 0o600} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s: mode %04o, want %04o", p, got, want)
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// The same format as `wg genkey`: base64 and exactly one newline.
	if len(data) != 45 || data[44] != '\n' {
		t.Errorf("key file is %d bytes %q..., want 44 base64 characters and a newline", len(data), data[:min(len(data), 4)])
	}
	priv, err := Load(path)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if priv.PublicKey() != pub {
		t.Errorf("Load(...).PublicKey() = %v, want the key Generate returned %v", priv.PublicKey(), pub)
	}
	if strings.Contains(string(data), pub.String()) {
		t.Error("key file contains the public key instead of the private key")
	}
}

func TestGenerateKeepsExistingDirMode(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := Generate(filepath.Join(dir, "k"), false); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o755 {
		t.Errorf("existing directory changed to %04o", fi.Mode().Perm())
	}
}

func TestGenerateRefusesOverwrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "private.key")
	first, err := Generate(path, false)
	if err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Generate(path, false)
	var ee *ExistsError
	if !errors.As(err, &ee) || !errors.Is(err, fs.ErrExist) {
		t.Fatalf("second Generate: got %v, want *ExistsError wrapping fs.ErrExist", err)
	}
	if !strings.Contains(err.Error(), "--force") {
		t.Errorf("error %q does not say how to replace the key", err)
	}
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(before) != string(after) {
		t.Fatal("refused Generate changed the key file")
	}

	second, err := Generate(path, true)
	if err != nil {
		t.Fatalf("Generate with force: %v", err)
	}
	if second == first {
		t.Error("Generate with force kept the old key")
	}
	priv, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if priv.PublicKey() != second {
		t.Error("forced key file does not hold the new key")
	}
}

func TestGenerateFailureLeavesNothing(t *testing.T) {
	if os.Geteuid() == 0 {
		// Root ignores directory permissions; use a path whose parent is a file.
		parent := filepath.Join(t.TempDir(), "file")
		if err := os.WriteFile(parent, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := Generate(filepath.Join(parent, "k"), false); err == nil {
			t.Fatal("Generate under a regular file succeeded")
		}
		return
	}
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o500); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(dir, 0o700) })
	if _, err := Generate(filepath.Join(dir, "k"), false); err == nil {
		t.Fatal("Generate in a read-only directory succeeded")
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 0 {
		t.Errorf("failed Generate left %v", ents)
	}
}

func TestLoad(t *testing.T) {
	priv, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	secret := priv.String()
	tests := []struct {
		name    string
		content string
		mode    fs.FileMode
		wantErr string // substring; "" = success
	}{
		{name: "wg genkey output", content: secret + "\n", mode: 0o600},
		{name: "no newline", content: secret, mode: 0o400},
		{name: "surrounding space", content: "  " + secret + "\r\n\n", mode: 0o600},
		{name: "group readable", content: secret + "\n", mode: 0o640, wantErr: "chmod 600"},
		{name: "world readable", content: secret + "\n", mode: 0o644, wantErr: "chmod 600"},
		{name: "truncated", content: secret[:40] + "\n", mode: 0o600, wantErr: "not a WireGuard private key"},
		{name: "bad base64", content: "!" + secret[1:], mode: 0o600, wantErr: "not a WireGuard private key"},
		{name: "two keys", content: secret + "\n" + secret + "\n", mode: 0o600, wantErr: "not a WireGuard private key"},
		{name: "empty", content: "", mode: 0o600, wantErr: "not a WireGuard private key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "k")
			if err := os.WriteFile(path, []byte(tt.content), tt.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tt.mode); err != nil { // umask-proof
				t.Fatal(err)
			}
			got, err := Load(path)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				if got != priv {
					t.Fatal("Load returned a different key")
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Load: got error %v, want one containing %q", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name the file", err)
			}
			// No part of the key may leak into an error a user may paste.
			for _, frag := range []string{secret[:12], secret[12:24], secret[24:36]} {
				if strings.Contains(err.Error(), frag) {
					t.Fatalf("error %q contains key material", err)
				}
			}
		})
	}
}

func TestLoadMissing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "k")
	_, err := Load(path)
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "lanlink keygen") {
		t.Fatalf("Load of a missing file: got %v, want fs.ErrNotExist and a keygen hint", err)
	}
}
