package cli

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"lanlink/internal/fsutil"
	"lanlink/internal/lab"
)

// labStateRoot holds one directory per lab started by `lanlink lab up`,
// named after the lab. /run is right for a throwaway lab: a reboot removes
// the namespaces and this record together.
const labStateRoot = "/run/lanlink-lab"

// Fixed paths of a lab's lanlink files. The key path is as a gateway sees
// it: its /run is its own (lab.Node.RunDir), so each key stays on its
// gateway, like a real one.
const (
	labIface   = "lanlink0"
	labKeyPath = "/run/lanlink-lab/private.key"
	labWANTUN  = "wanem0"
	labWANRule = 100 // routing table of the delay line in the internet namespace
)

var labNameRe = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`)

// labID derives the lab ID from the lab's name, so that `lanlink lab down`
// finds a lab's namespaces even when its state file is lost.
func labID(name string) string {
	const alphabet = "0123456789abcdefghijklmnopqrstuvwxyz"
	sum := sha256.Sum256([]byte("lanlink-lab:" + name))
	id := []byte("ll")
	for _, c := range sum[:4] {
		id = append(id, alphabet[int(c)%len(alphabet)])
	}
	return string(id)
}

func labStateDir(name string) string { return filepath.Join(labStateRoot, name) }

func checkLabName(name string) error {
	if !labNameRe.MatchString(name) {
		return usagef("lab: --name %q: want 1 to 32 of a-z, 0-9 and '-', starting with a letter or digit", name)
	}
	return nil
}

// labState is what `lanlink lab up` records in <labStateRoot>/<name>/state.json
// for status, exec and down. It is written before the first namespace
// exists and after every process start, so a lab that failed half-way can
// still be removed.
type labState struct {
	Name     string        `json:"name"`
	ID       string        `json:"id"`
	Dir      string        `json:"dir,omitempty"` // lab.Lab.Dir: RunDirs, plan, logs
	Binary   string        `json:"binary,omitempty"`
	Plan     string        `json:"plan,omitempty"`
	Created  time.Time     `json:"created"`
	Complete bool          `json:"complete"` // lab up finished
	WAN      *labWAN       `json:"wan,omitempty"`
	Internet *labNode      `json:"internet,omitempty"`
	Offices  []labOffice   `json:"offices,omitempty"`
	Procs    []labProcInfo `json:"procs,omitempty"`
}

type labWAN struct {
	RTT  string  `json:"rtt,omitempty"`
	Rate string  `json:"rate,omitempty"`
	Loss float64 `json:"loss,omitempty"` // probability per direction, 0..1
}

type labOffice struct {
	Index    int       `json:"index"`
	Site     string    `json:"site"`
	LAN      string    `json:"lan"`
	LAN6     string    `json:"lan6,omitempty"`
	WAN      string    `json:"wan"`
	Endpoint string    `json:"endpoint"`
	Tunnel   string    `json:"tunnel,omitempty"`
	Tunnel6  string    `json:"tunnel6,omitempty"`
	Router   labNode   `json:"router"`
	Gateway  labNode   `json:"gateway"`
	Hosts    []labNode `json:"hosts"`
}

type labNode struct {
	Namespace string `json:"namespace"`
	Addr      string `json:"addr"`
	RunDir    string `json:"run_dir"`
}

type labProcInfo struct {
	Role      string `json:"role"` // "agent office1", "wanem"
	Namespace string `json:"namespace"`
	PID       int    `json:"pid"`
	StartTime uint64 `json:"start_time"`
	Log       string `json:"log"`
}

func (n labNode) node() *lab.Node { return &lab.Node{Name: n.Namespace, RunDir: n.RunDir} }

func nodeRecord(n *lab.Node) labNode {
	return labNode{Namespace: n.Name, Addr: n.Addr.String(), RunDir: n.RunDir}
}

func officeRecord(o *lab.Office, site string, tunnels []string) labOffice {
	r := labOffice{Index: o.Index, Site: site, LAN: o.LAN.String(), WAN: o.WAN.String(), Endpoint: o.Endpoint().String(),
		Router: nodeRecord(o.Router), Gateway: nodeRecord(o.Gateway)}
	if o.LAN6.IsValid() {
		r.LAN6 = o.LAN6.String()
	}
	if len(tunnels) > 0 {
		r.Tunnel = tunnels[0]
	}
	if len(tunnels) > 1 {
		r.Tunnel6 = tunnels[1]
	}
	for _, h := range o.Hosts {
		r.Hosts = append(r.Hosts, nodeRecord(h))
	}
	return r
}

func procRecord(role string, p *lab.Proc) labProcInfo {
	return labProcInfo{Role: role, Namespace: p.Node.Name, PID: p.PID, StartTime: p.StartTime, Log: p.LogFile}
}

// errNoLab: no state file for the name.
var errNoLab = errors.New("no such lab")

func loadLabState(name string) (*labState, error) {
	b, err := os.ReadFile(filepath.Join(labStateDir(name), "state.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("lab %q: %w (start one with `lanlink lab up`)", name, errNoLab)
	}
	if err != nil {
		return nil, fmt.Errorf("read lab state: %w", err)
	}
	var st labState
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("lab state %s: %w (remove the lab with `lanlink lab down --name %s`)", filepath.Join(labStateDir(name), "state.json"), err, name)
	}
	return &st, nil
}

func (st *labState) save() error {
	dir := labStateDir(st.Name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("lab state directory: %w", err)
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	if err := fsutil.WriteFileAtomic(filepath.Join(dir, "state.json"), append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("write lab state: %w", err)
	}
	return nil
}

// office finds an office by "office2", "o2" or "2".
func (st *labState) office(s string) (*labOffice, error) {
	t := strings.TrimPrefix(strings.TrimPrefix(s, "office"), "o")
	i, err := strconv.Atoi(t)
	if err == nil {
		for k := range st.Offices {
			if st.Offices[k].Index == i {
				return &st.Offices[k], nil
			}
		}
	}
	var names []string
	for _, o := range st.Offices {
		names = append(names, o.Site)
	}
	return nil, usagef("lab: no office %q in lab %s: want one of %s (or o1, 1, …), or internet", s, st.Name, strings.Join(names, ", "))
}

// node resolves OFFICE[/host|/hostN|/gw|/router] (or "internet"); the
// default node of an office is its first LAN host.
func (st *labState) node(spec string) (labNode, string, error) {
	if spec == "internet" || spec == "inet" {
		if st.Internet == nil {
			return labNode{}, "", fmt.Errorf("lab %s has no internet namespace on record", st.Name)
		}
		return *st.Internet, "internet", nil
	}
	off, role, _ := strings.Cut(spec, "/")
	o, err := st.office(off)
	if err != nil {
		return labNode{}, "", err
	}
	switch role {
	case "gw", "gateway", "g":
		return o.Gateway, o.Site + "/gw", nil
	case "router", "r":
		return o.Router, o.Site + "/router", nil
	}
	j := 1
	if t, ok := strings.CutPrefix(role, "host"); ok || strings.HasPrefix(role, "h") {
		if !ok {
			t = role[1:]
		}
		if t != "" {
			if j, err = strconv.Atoi(t); err != nil {
				j = -1
			}
		}
	} else if role != "" {
		j = -1
	}
	if j == -1 {
		return labNode{}, "", usagef("lab: node %q: want OFFICE, OFFICE/host, OFFICE/hostN, OFFICE/gw or OFFICE/router", spec)
	}
	if j < 1 || j > len(o.Hosts) {
		return labNode{}, "", usagef("lab: %s has hosts 1…%d, not %d", o.Site, len(o.Hosts), j)
	}
	return o.Hosts[j-1], fmt.Sprintf("%s/host%d", o.Site, j), nil
}
