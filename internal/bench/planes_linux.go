package bench

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"lanlink/internal/lab"
)

func newPlane(name string) plane {
	switch name {
	case PlaneRaw:
		return &rawPlane{}
	case PlaneLanlink:
		return &lanlinkPlane{}
	case PlaneWGGoUp:
		return &wgGoPlane{name: name, upstream: true}
	case PlaneWGGoDebian:
		return &wgGoPlane{name: name}
	case PlaneOpenVPN:
		return &openvpnPlane{}
	case PlaneSSH:
		return &sshPlane{}
	case PlaneNebula:
		return &nebulaPlane{}
	}
	panic("unknown plane " + name)
}

// planeDir is a plane's directory of keys, configs and logs.
func (e *env) planeDir(name string) (string, error) {
	d := filepath.Join(e.dir, name)
	return d, os.MkdirAll(d, 0o700)
}

// --- raw: the routers route LAN to LAN over the internet, no tunnel ----

type rawPlane struct{}

func (rawPlane) prepare(context.Context, *env) error { return nil }

func (rawPlane) start(ctx context.Context, e *env, _ string) (*session, error) {
	set := func(via func(i int) string) error {
		for i, o := range e.offs {
			if _, err := sh(ctx, o.Router, fmt.Sprintf("ip route replace %s via %s", e.offs[1-i].LAN, via(i))); err != nil {
				return err
			}
		}
		return nil
	}
	restore := func() error {
		// The lab's own route: remote LANs via the office's gateway.
		return set(func(i int) string { return e.offs[i].GatewayLAN.String() })
	}
	if err := set(func(int) string { return internetCore.String() }); err != nil {
		return nil, errors.Join(err, restore())
	}
	return &session{stop: restore}, nil
}

// --- helpers shared by the tunnel planes --------------------------------

// tunnelAddr is gateway i's (0, 1) address on a plane's /24.
func tunnelAddr(third byte, i int) string { return fmt.Sprintf("10.%d.0.%d", third, i+1) }

// linkUp addresses a point-to-point tunnel interface on gateway i and
// routes the other office's LAN into it.
func (e *env) linkUp(ctx context.Context, i int, dev string, third byte, mtu int) error {
	s := fmt.Sprintf("ip addr add %s/24 dev %s\nip link set dev %s mtu %d up\nip route replace %s dev %s\n",
		tunnelAddr(third, i), dev, dev, mtu, e.offs[1-i].LAN, dev)
	_, err := sh(ctx, e.gws[i], s)
	return err
}

// --- lanlink ------------------------------------------------------------

type lanlinkPlane struct {
	plan string
	keys [2]string
}

func (p *lanlinkPlane) prepare(ctx context.Context, e *env) error {
	d, err := e.planeDir(PlaneLanlink)
	if err != nil {
		return err
	}
	p.plan = filepath.Join(d, "network.toml")
	run := func(args ...string) (string, error) {
		out, err := exec.CommandContext(ctx, e.opts.LanlinkBin, args...).CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("lanlink %s: %w: %s", strings.Join(args, " "), err, out)
		}
		return string(out), nil
	}
	if _, err := run("init", "-f", p.plan, "--tunnel", "10.255.0.0/24", "--name", "bench"); err != nil {
		return err
	}
	for i, o := range e.offs {
		p.keys[i] = filepath.Join(d, o.Name+".key")
		out, err := o.Gateway.Exec(ctx, e.opts.LanlinkBin, "keygen", "--key", p.keys[i])
		if err != nil {
			return err
		}
		pub := strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
		if _, err := run("site", "add", o.Name, "-f", p.plan, "--public-key", pub, "--lan", o.LAN.String(), "--endpoint", o.Endpoint().String()); err != nil {
			return err
		}
	}
	return nil
}

func (p *lanlinkPlane) start(ctx context.Context, e *env, profileDir string) (*session, error) {
	sess := &session{}
	var procs []*lab.Proc
	sess.stop = func() error { return stopAll(procs...) }
	for i, o := range e.offs {
		logf := filepath.Join(e.dir, PlaneLanlink, o.Name+".log")
		argv := append(append([]string{"env"}, e.opts.LanlinkEnv...), e.opts.LanlinkBin, "up", "-f", p.plan, "--key", p.keys[i], "--backend", "userspace", "--interface", "lanlink0")
		if profileDir != "" {
			argv = append(argv, "--cpuprofile", filepath.Join(profileDir, "lanlink-"+o.Name+".pprof"))
		}
		pr, err := o.Gateway.Start(ctx, argv, logf)
		if err != nil {
			return nil, errors.Join(err, sess.stop())
		}
		procs = append(procs, pr)
		sess.pids = append(sess.pids, pr.PID)
		sess.logs = append(sess.logs, logf)
	}
	return sess, nil
}

// --- wireguard-go programs (upstream build and Debian's) ----------------

type wgGoPlane struct {
	name     string
	upstream bool
	confs    [2]string
}

func (p *wgGoPlane) prepare(ctx context.Context, e *env) error {
	d, err := e.planeDir(p.name)
	if err != nil {
		return err
	}
	var priv, pub [2]string
	for i := range 2 {
		b, err := exec.CommandContext(ctx, "wg", "genkey").Output()
		if err != nil {
			return fmt.Errorf("wg genkey: %w", err)
		}
		priv[i] = strings.TrimSpace(string(b))
		c := exec.CommandContext(ctx, "wg", "pubkey")
		c.Stdin = strings.NewReader(priv[i])
		b, err = c.Output()
		if err != nil {
			return fmt.Errorf("wg pubkey: %w", err)
		}
		pub[i] = strings.TrimSpace(string(b))
	}
	for i, o := range e.offs {
		other := e.offs[1-i]
		conf := fmt.Sprintf("[Interface]\nPrivateKey = %s\nListenPort = %d\n\n[Peer]\nPublicKey = %s\nEndpoint = %s\nAllowedIPs = %s/32, %s\n",
			priv[i], o.Port, pub[1-i], other.Endpoint(), tunnelAddr(77, 1-i), other.LAN)
		p.confs[i] = filepath.Join(d, o.Name+".conf")
		if err := os.WriteFile(p.confs[i], []byte(conf), 0o600); err != nil {
			return err
		}
	}
	return nil
}

func (p *wgGoPlane) start(ctx context.Context, e *env, _ string) (*session, error) {
	bin := e.opts.DebianWGGo
	if p.upstream {
		bin = e.opts.WGGoBin
	}
	const dev = "bwg0"
	sess := &session{}
	var procs []*lab.Proc
	sess.stop = func() error { return stopAll(procs...) }
	for i, o := range e.offs {
		logf := filepath.Join(e.dir, p.name, o.Name+".log")
		// env execs in place, so the PID is wireguard-go's; foreground
		// keeps it (no daemon re-exec).
		pr, err := o.Gateway.Start(ctx, []string{"env", "LOG_LEVEL=error", bin, "-f", dev}, logf)
		if err != nil {
			return nil, errors.Join(err, sess.stop())
		}
		procs = append(procs, pr)
		sess.pids = append(sess.pids, pr.PID)
		sess.logs = append(sess.logs, logf)
		if err := waitFile(ctx, filepath.Join(o.Gateway.RunDir, "wireguard", dev+".sock"), 10*time.Second); err != nil {
			return sess, errors.Join(err, sess.stop())
		}
		if _, err := o.Gateway.Exec(ctx, "wg", "setconf", dev, p.confs[i]); err != nil {
			return sess, errors.Join(err, sess.stop())
		}
		if err := e.linkUp(ctx, i, dev, 77, 1420); err != nil {
			return sess, errors.Join(err, sess.stop())
		}
	}
	return sess, nil
}

// --- OpenVPN: TLS peer-to-peer over UDP, AEAD cipher, big buffers -------

type openvpnPlane struct {
	confs [2]string
}

// selfSigned writes an ECDSA P-256 self-signed certificate and key, and
// returns the certificate's SHA-256 fingerprint in OpenVPN's notation.
func selfSigned(dir, name string) (fp string, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return "", err
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, name+".crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, name+".key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		return "", err
	}
	sum := sha256.Sum256(der)
	hex := make([]string, len(sum))
	for i, b := range sum {
		hex[i] = fmt.Sprintf("%02X", b)
	}
	return strings.Join(hex, ":"), nil
}

func (p *openvpnPlane) prepare(_ context.Context, e *env) error {
	d, err := e.planeDir(PlaneOpenVPN)
	if err != nil {
		return err
	}
	var fps [2]string
	for i, o := range e.offs {
		if fps[i], err = selfSigned(d, o.Name); err != nil {
			return err
		}
	}
	for i, o := range e.offs {
		other := e.offs[1-i]
		role := "tls-server"
		remote := ""
		if i == 0 {
			role = "tls-client"
			remote = fmt.Sprintf("remote %s %d\n", other.WAN, other.Port)
		} else {
			// The server floats to wherever the client's NATed packets
			// come from.
			remote = "float\n"
		}
		lan := other.LAN
		mask := fmt.Sprintf("%d.%d.%d.%d", 0xff, 0xff, 0xff, 0) // lab LANs are /24
		if lan.Bits() != 24 {
			return fmt.Errorf("openvpn plane assumes /24 LANs, office has %v", lan)
		}
		conf := fmt.Sprintf(`dev bovpn0
dev-type tun
proto udp
port %d
%s%s
ifconfig %s %s
route %s %s
cert %s
key %s
peer-fingerprint %s
dh none
data-ciphers AES-256-GCM:CHACHA20-POLY1305
disable-dco
tun-mtu 1420
mssfix
sndbuf 7340032
rcvbuf 7340032
txqueuelen 1000
fast-io
verb 3
`, o.Port, remote, role, tunnelAddr(78, i), tunnelAddr(78, 1-i), lan.Addr(), mask,
			filepath.Join(d, o.Name+".crt"), filepath.Join(d, o.Name+".key"), fps[1-i])
		p.confs[i] = filepath.Join(d, o.Name+".conf")
		if err := os.WriteFile(p.confs[i], []byte(conf), 0o600); err != nil {
			return err
		}
	}
	return nil
}

func (p *openvpnPlane) start(ctx context.Context, e *env, _ string) (*session, error) {
	// The server (office 2) first.
	return startPair(ctx, e, PlaneOpenVPN, func(i int) []string { return []string{"openvpn", "--config", p.confs[i]} })
}

// startPair starts one tunnel process on each gateway, office 2's first
// (the server or lighthouse the other dials), with its log in the plane's
// directory. If the second fails, the first is stopped.
func startPair(ctx context.Context, e *env, plane string, argv func(i int) []string) (*session, error) {
	sess := &session{}
	var procs []*lab.Proc
	sess.stop = func() error { return stopAll(procs...) }
	for i := 1; i >= 0; i-- {
		o := e.offs[i]
		logf := filepath.Join(e.dir, plane, o.Name+".log")
		pr, err := o.Gateway.Start(ctx, argv(i), logf)
		if err != nil {
			return nil, errors.Join(err, sess.stop())
		}
		procs = append(procs, pr)
		sess.pids = append(sess.pids, pr.PID)
		sess.logs = append(sess.logs, logf)
	}
	return sess, nil
}

// --- ssh -w: a layer-3 tunnel in an SSH connection ----------------------

type sshPlane struct {
	sshdConf  string
	clientKey string
}

func (p *sshPlane) prepare(ctx context.Context, e *env) error {
	d, err := e.planeDir(PlaneSSH)
	if err != nil {
		return err
	}
	hostKey := filepath.Join(d, "host_ed25519")
	p.clientKey = filepath.Join(d, "client_ed25519")
	for _, k := range []string{hostKey, p.clientKey} {
		if out, err := exec.CommandContext(ctx, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "lanlink-bench", "-f", k).CombinedOutput(); err != nil {
			return fmt.Errorf("ssh-keygen: %w: %s", err, out)
		}
	}
	pub, err := os.ReadFile(p.clientKey + ".pub")
	if err != nil {
		return err
	}
	auth := filepath.Join(d, "authorized_keys")
	if err := os.WriteFile(auth, pub, 0o600); err != nil {
		return err
	}
	// A private sshd: its own port, host key and authorized key, tunnel
	// only, nothing from the host's /etc/ssh.
	conf := fmt.Sprintf(`Port %d
ListenAddress %s
HostKey %s
AuthorizedKeysFile %s
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
UsePAM no
StrictModes no
PermitTunnel point-to-point
AllowTcpForwarding no
X11Forwarding no
PidFile none
Ciphers aes256-gcm@openssh.com,chacha20-poly1305@openssh.com
LogLevel ERROR
`, benchSSHPort, e.offs[1].GatewayLAN, hostKey, auth)
	p.sshdConf = filepath.Join(d, "sshd_config")
	return os.WriteFile(p.sshdConf, []byte(conf), 0o600)
}

func (p *sshPlane) start(ctx context.Context, e *env, _ string) (*session, error) {
	const dev = "tun5"
	sess := &session{}
	var procs []*lab.Proc
	sess.stop = func() error { return stopAll(procs...) }
	srv, cli := e.offs[1], e.offs[0]
	// sshd's privilege separation directory, in the gateway's own /run.
	if err := os.MkdirAll(filepath.Join(srv.Gateway.RunDir, "sshd"), 0o755); err != nil {
		return nil, err
	}
	slog := filepath.Join(e.dir, PlaneSSH, "sshd.log")
	pr, err := srv.Gateway.Start(ctx, []string{"/usr/sbin/sshd", "-D", "-e", "-f", p.sshdConf}, slog)
	if err != nil {
		return nil, err
	}
	procs = append(procs, pr)
	sess.pids = append(sess.pids, pr.PID)
	sess.logs = append(sess.logs, slog)
	clog := filepath.Join(e.dir, PlaneSSH, "ssh.log")
	var client *lab.Proc
	deadline := time.Now().Add(10 * time.Second)
	for {
		client, err = cli.Gateway.Start(ctx, []string{"ssh", "-N", "-w", "5:5", "-o", "Tunnel=point-to-point",
			"-i", p.clientKey, "-p", fmt.Sprint(benchSSHPort),
			"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
			"-o", "ExitOnForwardFailure=yes", "-o", "Ciphers=aes256-gcm@openssh.com", "-o", "Compression=no",
			"-o", "LogLevel=ERROR", "root@" + srv.WAN.String()}, clog)
		if err != nil {
			return sess, errors.Join(err, sess.stop())
		}
		// Connected when the far side has its tun; sshd may not be
		// listening yet on the first try, and then ssh exits.
		if werr := waitLink(ctx, srv.Gateway, dev, 2*time.Second); werr == nil {
			break
		}
		_ = client.Stop(lab.StopGrace)
		if time.Now().After(deadline) {
			return sess, errors.Join(errors.New("ssh -w: no tunnel within 10 s"), sess.stop())
		}
	}
	procs = append(procs, client)
	sess.pids = append(sess.pids, client.PID)
	sess.logs = append(sess.logs, clog)
	if err := waitLink(ctx, cli.Gateway, dev, 5*time.Second); err != nil {
		return sess, errors.Join(err, sess.stop())
	}
	for i := range e.offs {
		// tun default MTU 1500: the inner packets ride in a TCP stream
		// that segments them anyway.
		if err := e.linkUp(ctx, i, dev, 79, 1500); err != nil {
			return sess, errors.Join(err, sess.stop())
		}
	}
	return sess, nil
}

// --- Nebula: lighthouse on office 2, unsafe_routes for the LANs ---------

type nebulaPlane struct {
	confs [2]string
}

func (p *nebulaPlane) prepare(ctx context.Context, e *env) error {
	d, err := e.planeDir(PlaneNebula)
	if err != nil {
		return err
	}
	cert := func(args ...string) error {
		c := exec.CommandContext(ctx, "nebula-cert", args...)
		c.Dir = d
		if out, err := c.CombinedOutput(); err != nil {
			return fmt.Errorf("nebula-cert %s: %w: %s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	if err := cert("ca", "-name", "lanlink-bench", "-duration", "24h"); err != nil {
		return err
	}
	for i, o := range e.offs {
		if err := cert("sign", "-name", o.Name, "-ip", tunnelAddr(80, i)+"/24", "-subnets", o.LAN.String(),
			"-out-crt", o.Name+".crt", "-out-key", o.Name+".key"); err != nil {
			return err
		}
	}
	for i, o := range e.offs {
		other := e.offs[1-i]
		lh := "  am_lighthouse: true\n"
		if i == 0 {
			lh = fmt.Sprintf("  am_lighthouse: false\n  interval: 60\n  hosts:\n    - %q\n", tunnelAddr(80, 1))
		}
		conf := fmt.Sprintf(`pki:
  ca: %s
  cert: %s
  key: %s
static_host_map:
  %q: [%q]
lighthouse:
%slisten:
  host: 0.0.0.0
  port: %d
  read_buffer: 7340032
  write_buffer: 7340032
punchy:
  punch: true
cipher: aes
tun:
  dev: bneb0
  mtu: 1420
  tx_queue: 1000
  unsafe_routes:
    - route: %s
      via: %s
logging:
  level: warning
firewall:
  outbound:
    - port: any
      proto: any
      host: any
  inbound:
    - port: any
      proto: any
      host: any
`, filepath.Join(d, "ca.crt"), filepath.Join(d, o.Name+".crt"), filepath.Join(d, o.Name+".key"),
			tunnelAddr(80, 1-i), other.Endpoint().String(), lh, o.Port, other.LAN, tunnelAddr(80, 1-i))
		p.confs[i] = filepath.Join(d, o.Name+".yml")
		if err := os.WriteFile(p.confs[i], []byte(conf), 0o600); err != nil {
			return err
		}
	}
	return nil
}

func (p *nebulaPlane) start(ctx context.Context, e *env, _ string) (*session, error) {
	// The lighthouse (office 2) first.
	return startPair(ctx, e, PlaneNebula, func(i int) []string { return []string{"nebula", "-config", p.confs[i]} })
}
