package agent

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"time"
)

// listen opens the root-only control socket. The state directory is 0700
// and the socket 0600: status shows peers and endpoints, and reload/down
// change the host, so only root may talk to the agent.
func (a *Agent) listen() error {
	if err := os.MkdirAll(a.o.StateDir, 0o700); err != nil {
		return fmt.Errorf("create state directory: %w", err)
	}
	if err := os.Chmod(a.o.StateDir, 0o700); err != nil {
		return fmt.Errorf("restrict state directory: %w", err)
	}
	path := SocketPath(a.o.StateDir, a.o.Interface)
	// We hold the interface lock, so a socket file here is a crashed
	// agent's leftover.
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove stale control socket: %w", err)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("control socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return fmt.Errorf("restrict control socket: %w", err)
	}
	a.ln = ln
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return // closed by teardown
			}
			a.wg.Add(1)
			go func() {
				defer a.wg.Done()
				a.serve(conn)
			}()
		}
	}()
	return nil
}

// serve answers one request. Requests are handed to the loop goroutine so
// that all state changes happen in one place.
func (a *Agent) serve(conn net.Conn) {
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(60 * time.Second))
	var req request
	if err := json.NewDecoder(bufio.NewReader(conn)).Decode(&req); err != nil {
		json.NewEncoder(conn).Encode(response{Error: "bad request: " + err.Error()})
		return
	}
	r := ctlRequest{op: req.Op, reply: make(chan response, 1)}
	select {
	case a.reqs <- r:
	case <-time.After(30 * time.Second):
		json.NewEncoder(conn).Encode(response{Error: "agent busy"})
		return
	}
	select {
	case resp := <-r.reply:
		json.NewEncoder(conn).Encode(resp)
	case <-time.After(55 * time.Second):
		json.NewEncoder(conn).Encode(response{Error: "agent did not answer in time"})
	}
}
