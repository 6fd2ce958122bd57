package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
)

// tool is a program a plane needs and the Debian package that has it.
type tool struct{ path, pkg string }

func toolsFor(planes []string) []tool {
	ts := []tool{{"iperf3", "iperf3"}, {"ip", "iproute2"}, {"nft", "nftables"}, {"tc", "iproute2"}}
	for _, p := range planes {
		switch p {
		case PlaneWGGoUp:
			ts = append(ts, tool{"wg", "wireguard-tools"})
		case PlaneWGGoDebian:
			ts = append(ts, tool{"wg", "wireguard-tools"}, tool{"/usr/bin/wireguard-go", "wireguard-go"})
		case PlaneOpenVPN:
			ts = append(ts, tool{"openvpn", "openvpn"})
		case PlaneSSH:
			ts = append(ts, tool{"/usr/sbin/sshd", "openssh-server"}, tool{"ssh", "openssh-client"}, tool{"ssh-keygen", "openssh-client"})
		case PlaneNebula:
			ts = append(ts, tool{"nebula", "nebula"}, tool{"nebula-cert", "nebula"})
		}
	}
	return ts
}

// policyRC is Debian's hook that tells package scripts whether they may
// start services; exit 101 means "no".
const policyRC = "/usr/sbin/policy-rc.d"

// EnsureTools installs, with apt-get, the Debian packages that provide the
// programs the planes need and are missing. Installing openssh-server or
// nebula must not start a daemon on the host: unless a policy-rc.d already
// exists, one that forbids starting services is in place for the duration
// of the install and removed after.
func EnsureTools(ctx context.Context, planes []string, out io.Writer) error {
	var pkgs []string
	for _, t := range toolsFor(planes) {
		if _, err := exec.LookPath(t.path); err != nil && !slices.Contains(pkgs, t.pkg) {
			pkgs = append(pkgs, t.pkg)
		}
	}
	if len(pkgs) == 0 {
		return nil
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		return fmt.Errorf("missing packages %v and no apt-get to install them: install them by hand", pkgs)
	}
	fmt.Fprintf(out, "installing Debian packages: %v\n", pkgs)
	if _, err := os.Lstat(policyRC); errors.Is(err, os.ErrNotExist) {
		if err := os.WriteFile(policyRC, []byte("#!/bin/sh\n# lanlink bench: no services started while it installs packages\nexit 101\n"), 0o755); err != nil {
			return fmt.Errorf("write %s: %w", policyRC, err)
		}
		defer os.Remove(policyRC)
	}
	run := func(args ...string) error {
		cmd := exec.CommandContext(ctx, "apt-get", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("apt-get %v: %w", args, err)
		}
		return nil
	}
	if err := run("update", "-qq"); err != nil {
		return err
	}
	return run(append([]string{"install", "-y", "-qq", "--no-install-recommends"}, pkgs...)...)
}
