package keys

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"lanlink/internal/fsutil"
)

// DefaultPath is where keygen, pubkey, render and the agent look for the
// private key when not told otherwise.
const DefaultPath = "/etc/lanlink/private.key"

// ErrExist is wrapped by Generate's error when the key file exists and
// force is false. It is fs.ErrExist.
var ErrExist = fs.ErrExist

// Generate creates a new private key at path and returns its public key.
// The parent directory is created with mode 0700 when missing (an existing
// one is left as it is); the file is written atomically with mode 0600 in
// the format of `wg genkey` (base64 and a newline). An existing file is
// never replaced unless force is set, because replacing a gateway's key
// cuts it off until the plan carries the new public key.
func Generate(path string, force bool) (wgtypes.Key, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return wgtypes.Key{}, fmt.Errorf("create key directory %s: %w", dir, err)
	}
	priv, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		return wgtypes.Key{}, fmt.Errorf("generate private key: %w", err)
	}
	data := []byte(priv.String() + "\n")
	if force {
		err = fsutil.WriteFileAtomic(path, data, 0o600)
	} else {
		err = fsutil.WriteFileExclusive(path, data, 0o600)
		if errors.Is(err, fs.ErrExist) {
			return wgtypes.Key{}, &ExistsError{Path: path}
		}
	}
	if err != nil {
		return wgtypes.Key{}, fmt.Errorf("write private key: %w", err)
	}
	return priv.PublicKey(), nil
}

// ExistsError is Generate's refusal to replace an existing key file.
type ExistsError struct{ Path string }

func (e *ExistsError) Error() string {
	return fmt.Sprintf("%s already exists: refusing to replace a private key "+
		"(its public key may be in the plan already; show it with `lanlink pubkey --key %s`, "+
		"or replace the key on purpose with --force)", e.Path, e.Path)
}

func (e *ExistsError) Unwrap() error { return fs.ErrExist }

// ModeError is Load's refusal to use a key file that users other than its
// owner can read.
type ModeError struct {
	Path string
	Mode fs.FileMode
}

func (e *ModeError) Error() string {
	return fmt.Sprintf("private key file %s has mode %04o and is readable by group or others: "+
		"run `chmod 600 %s` (and consider the key leaked if others could log in)", e.Path, e.Mode.Perm(), e.Path)
}

// Load reads the private key in path, written by Generate or `wg genkey`.
// It refuses a file whose mode gives group or others any access, like
// OpenSSH does, so a leaked key is noticed rather than used.
func Load(path string) (wgtypes.Key, error) {
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return wgtypes.Key{}, fmt.Errorf("private key file %s does not exist: create one with `lanlink keygen --key %s`: %w", path, path, err)
		}
		return wgtypes.Key{}, fmt.Errorf("read private key: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return wgtypes.Key{}, fmt.Errorf("read private key: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return wgtypes.Key{}, fmt.Errorf("private key file %s is not a regular file", path)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return wgtypes.Key{}, &ModeError{Path: path, Mode: fi.Mode()}
	}
	// A key file is 45 bytes; reading a bounded amount keeps a wrong path
	// (say, a disk image) from being slurped into memory.
	buf := make([]byte, 4096)
	n, err := io.ReadFull(f, buf)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return wgtypes.Key{}, fmt.Errorf("read private key file %s: %w", path, err)
	}
	k, err := parse(buf[:n])
	clear(buf)
	if err != nil {
		return wgtypes.Key{}, fmt.Errorf("private key file %s: %w", path, err)
	}
	return k, nil
}

// parse decodes a key without letting any of its text reach the error.
func parse(b []byte) (wgtypes.Key, error) {
	s := strings.TrimSpace(string(b))
	errBad := errors.New("not a WireGuard private key " +
		"(want one line of 44 base64 characters, as written by `lanlink keygen` or `wg genkey`)")
	if len(s) != base64.StdEncoding.EncodedLen(wgtypes.KeyLen) {
		return wgtypes.Key{}, errBad
	}
	raw, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(raw) != wgtypes.KeyLen {
		return wgtypes.Key{}, errBad
	}
	k, err := wgtypes.NewKey(raw)
	clear(raw)
	if err != nil {
		return wgtypes.Key{}, errBad
	}
	return k, nil
}
