package agent

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"
)

// DefaultStateDir holds the control sockets, locks and journals of running
// agents. It is root-only (0700).
const DefaultStateDir = "/run/lanlink"

// Control operations.
const (
	OpStatus = "status"
	OpReload = "reload"
	OpDown   = "down"
)

type request struct {
	Op string `json:"op"`
}

type response struct {
	OK     bool    `json:"ok"`
	Error  string  `json:"error,omitempty"`
	Status *Status `json:"status,omitempty"`
}

// SocketPath is where the agent for iface listens.
func SocketPath(stateDir, iface string) string {
	return filepath.Join(stateDir, iface+".sock")
}

// ErrNotRunning means no agent answers on the interface's control socket.
var ErrNotRunning = errors.New("no lanlink agent is running")

// Client talks to a running agent over its control socket.
type Client struct {
	StateDir  string
	Interface string
	Timeout   time.Duration // per request; 0 means 30 s
}

func (c *Client) do(ctx context.Context, op string) (*response, error) {
	timeout := c.Timeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	path := SocketPath(c.StateDir, c.Interface)
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, errConnRefused) {
			return nil, fmt.Errorf("%w on interface %s (no control socket at %s); start it with `lanlink up`", ErrNotRunning, c.Interface, path)
		}
		return nil, fmt.Errorf("connect to agent at %s: %w", path, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	if err := json.NewEncoder(conn).Encode(request{Op: op}); err != nil {
		return nil, fmt.Errorf("send %s to agent: %w", op, err)
	}
	var resp response
	if err := json.NewDecoder(bufio.NewReader(conn)).Decode(&resp); err != nil {
		return nil, fmt.Errorf("read agent's answer to %s: %w", op, err)
	}
	if !resp.OK {
		return &resp, errors.New(resp.Error)
	}
	return &resp, nil
}

// Status asks the agent for its status.
func (c *Client) Status(ctx context.Context) (*Status, error) {
	resp, err := c.do(ctx, OpStatus)
	if err != nil {
		return nil, err
	}
	if resp.Status == nil {
		return nil, errors.New("agent sent no status")
	}
	return resp.Status, nil
}

// Reload asks the agent to re-read the plan and key now. It returns the
// reason when the new plan is rejected.
func (c *Client) Reload(ctx context.Context) (*Status, error) {
	resp, err := c.do(ctx, OpReload)
	if err != nil {
		return nil, err
	}
	return resp.Status, nil
}

// Down asks the agent to stop and waits until it has undone its changes
// and released its control socket.
func (c *Client) Down(ctx context.Context) error {
	if _, err := c.do(ctx, OpDown); err != nil {
		return err
	}
	// The agent answers before tearing down; wait until its lock is free.
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		held, err := lockHeld(lockPath(c.StateDir, c.Interface))
		if err == nil && !held {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("agent on %s did not stop within 30 s", c.Interface)
}
