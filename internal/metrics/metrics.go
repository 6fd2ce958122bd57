package metrics

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"lanlink/internal/agent"
)

// Source returns the agent's current status; (*agent.Agent).Status is one.
type Source func(ctx context.Context) (agent.Status, error)

// ContentType is the Prometheus text exposition format, version 0.0.4.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// ScrapeTimeout bounds how long a scrape waits for the agent's status.
const ScrapeTimeout = 5 * time.Second

// Write writes st in the Prometheus text exposition format. now is the
// time handshake ages are measured against.
func Write(w io.Writer, st agent.Status, now time.Time) error {
	e := &enc{w: w}
	e.family("lanlink_info", "gauge", "Always 1; the labels say which site this agent runs.")
	e.sample("lanlink_info", 1, "backend", st.Backend, "interface", st.Interface, "network", st.Network, "site", st.Site)
	e.family("lanlink_plan_generation", "gauge", "Plans applied since the agent started (1 = the first).")
	e.sample("lanlink_plan_generation", float64(st.Generation))
	e.family("lanlink_reload_errors_total", "counter", "Plans rejected on reload since the agent started.")
	e.sample("lanlink_reload_errors_total", float64(st.ReloadErrors))
	e.family("lanlink_plan_rejected", "gauge", "1 while the newest plan on disk is rejected and the previous one keeps running.")
	e.sample("lanlink_plan_rejected", b2f(st.PlanError != ""))

	e.family("lanlink_peer_up", "gauge", "1 when the peer's last handshake is recent enough for traffic to flow.")
	for _, p := range st.Peers {
		e.sample("lanlink_peer_up", b2f(p.State == agent.PeerUp), "site", p.Site)
	}
	e.family("lanlink_peer_last_handshake_seconds", "gauge", "Unix time of the peer's last handshake; 0 if there was none.")
	for _, p := range st.Peers {
		v := 0.0
		if !p.LastHandshake.IsZero() {
			v = float64(p.LastHandshake.UnixNano()) / 1e9
		}
		e.sample("lanlink_peer_last_handshake_seconds", v, "site", p.Site)
	}
	e.family("lanlink_peer_handshake_age_seconds", "gauge", "Seconds since the peer's last handshake; absent if there was none.")
	for _, p := range st.Peers {
		if !p.LastHandshake.IsZero() {
			e.sample("lanlink_peer_handshake_age_seconds", max(0, now.Sub(p.LastHandshake).Seconds()), "site", p.Site)
		}
	}
	e.family("lanlink_peer_receive_bytes_total", "counter", "Bytes received from the peer through the tunnel.")
	for _, p := range st.Peers {
		e.sample("lanlink_peer_receive_bytes_total", float64(p.RxBytes), "site", p.Site)
	}
	e.family("lanlink_peer_transmit_bytes_total", "counter", "Bytes sent to the peer through the tunnel.")
	for _, p := range st.Peers {
		e.sample("lanlink_peer_transmit_bytes_total", float64(p.TxBytes), "site", p.Site)
	}
	return e.err
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// enc writes exposition lines and keeps the first write error.
type enc struct {
	w   io.Writer
	err error
}

func (e *enc) line(s string) {
	if e.err == nil {
		_, e.err = io.WriteString(e.w, s+"\n")
	}
}

func (e *enc) family(name, typ, help string) {
	e.line("# HELP " + name + " " + help)
	e.line("# TYPE " + name + " " + typ)
}

// sample writes name{k="v",…} value; labels are key, value pairs.
func (e *enc) sample(name string, v float64, labels ...string) {
	var b strings.Builder
	b.WriteString(name)
	if len(labels) > 0 {
		b.WriteByte('{')
		for i := 0; i+1 < len(labels); i += 2 {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(labels[i] + `="` + labelEscaper.Replace(labels[i+1]) + `"`)
		}
		b.WriteByte('}')
	}
	b.WriteByte(' ')
	b.WriteString(strconv.FormatFloat(v, 'g', -1, 64))
	e.line(b.String())
}

// labelEscaper escapes what the format requires in label values. Site
// names are validated by the plan, but the network name and the interface
// come from elsewhere.
var labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

// Handler serves GET /metrics from src. A failed status is a 503 so that
// Prometheus marks the target down instead of recording stale numbers.
func Handler(src Source, log *slog.Logger) http.Handler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), ScrapeTimeout)
		defer cancel()
		st, err := src(ctx)
		if err != nil {
			log.Warn("metrics scrape: agent status", "err", err)
			http.Error(w, "lanlink agent status: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", ContentType)
		if err := Write(w, st, time.Now()); err != nil {
			log.Debug("metrics scrape: write", "err", err)
		}
	})
	return mux
}

// Server is a running metrics endpoint.
type Server struct {
	ln  net.Listener
	srv *http.Server
	log *slog.Logger
}

// Start listens on addr (host:port) and serves Handler(src) until Close.
// Listening happens before Start returns, so a taken or invalid address is
// reported to the caller rather than logged later.
func Start(addr string, src Source, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: listen on %s: %w (give --metrics a free host:port such as 127.0.0.1:9587)", addr, err)
	}
	s := &Server{ln: ln, log: log, srv: &http.Server{
		Handler:           Handler(src, log),
		ReadHeaderTimeout: 5 * time.Second,
		WriteTimeout:      ScrapeTimeout + 5*time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}}
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server stopped", "err", err)
		}
	}()
	log.Info("serving metrics", "addr", ln.Addr().String(), "path", "/metrics")
	return s, nil
}

// Addr is the address the server listens on (useful with port 0).
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Close stops the server, giving running scrapes a moment to finish.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		return s.srv.Close()
	}
	return nil
}
