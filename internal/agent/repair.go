package agent

import (
	"context"
	"slices"
	"strings"
	"time"

	"lanlink/internal/firewall"
	"lanlink/internal/hostnet"
)

// Self-healing. The host state is applied as a difference from the last
// applied plan, so what someone else removes while the agent runs — a
// DHCP client or NetworkManager flushing routes, `ip link set down`, a
// hardening script turning forwarding off, nftables.service flushing the
// ruleset — would stay removed until the next plan change. The agent
// therefore asks the host and the firewall to re-assert the applied state
// (hostnet.Host.Repair, firewall.Firewall.Repair): at once, shortly after
// the kernel reports a change on the interface or to lanlink's nftables
// table (hostnet.Notifier, firewall.Notifier), and every RepairEvery as a
// safety net for what raises no event. A healthy host costs a few small
// netlink reads per check.
//
// What is in the way on purpose (a route to a remote LAN through another
// interface) is never undone: it is logged once when it appears, once
// when it clears, and shown in status as a problem meanwhile.
const (
	defaultRepairEvery = 10 * time.Second
	// repairDebounce gathers a burst of kernel events (a link going down
	// removes routes and addresses one by one) into one check.
	repairDebounce = 200 * time.Millisecond
)

// driftState is what the repair checks remember; owned by the loop.
type driftState struct {
	problems []string // the last check's, for status
	repairs  int      // pieces restored since start
}

// startRepair returns a channel that asks the loop for a repair (the value
// says why) and a function that stops asking.
func (a *Agent) startRepair(ctx context.Context) (<-chan string, func()) {
	out := make(chan string)
	if a.o.RepairEvery < 0 {
		return out, func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	host := a.subscribe(ctx, a.host, "no kernel events for the interface; host drift is only noticed by the periodic check")
	fw := a.subscribe(ctx, a.fw, "no nftables events; firewall drift is only noticed by the periodic check")
	go func() {
		tick := time.NewTicker(a.o.RepairEvery)
		defer tick.Stop()
		var debounce <-chan time.Time
		// event handles a wake-up from one source; a closed source is
		// dropped (nil blocks forever in the select).
		event := func(ok bool, src *<-chan struct{}, what string) {
			if !ok {
				*src = nil
				if ctx.Err() == nil {
					a.log.Warn(what+" event subscription ended; its drift is only noticed by the periodic check", "every", a.o.RepairEvery)
				}
				return
			}
			if debounce == nil {
				debounce = time.After(repairDebounce)
			}
		}
		for {
			var why string
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				why = "periodic check"
			case _, ok := <-host:
				event(ok, &host, "kernel")
				continue
			case _, ok := <-fw:
				event(ok, &fw, "nftables")
				continue
			case <-debounce:
				debounce = nil
				why = "kernel reported a change"
			}
			select {
			case out <- why:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, cancel
}

// notifier is what hostnet.Notifier and firewall.Notifier have in common.
type notifier interface {
	Changes(ctx context.Context) (<-chan struct{}, error)
}

// subscribe returns v's change events, or nil (periodic checks only) when
// v cannot report them.
func (a *Agent) subscribe(ctx context.Context, v any, fallback string) <-chan struct{} {
	n, ok := v.(notifier)
	if !ok {
		return nil
	}
	ch, err := n.Changes(ctx)
	if err != nil {
		a.log.Warn(fallback, "every", a.o.RepairEvery, "err", err)
		return nil
	}
	return ch
}

// repair re-asserts the applied host and firewall state, logs what it
// restored, and logs each problem it must leave alone once.
func (a *Agent) repair(why string) {
	if a.cfg == nil {
		return
	}
	var problems []string
	rep, err := a.host.Repair()
	for _, s := range rep.Restored {
		if s.Op == hostnet.OpForwardOn {
			a.log.Warn("forwarding was turned off behind lanlink's back; turned it on again, because this gateway forwards between its LAN and the tunnel (lanlink down restores the value from before lanlink up)",
				"sysctl", s.Family.SysctlName(), "trigger", why)
			continue
		}
		a.log.Warn("host network state was removed or changed behind lanlink's back; restored it", "restored", s.String(), "trigger", why)
	}
	a.drift.repairs += len(rep.Restored)
	for _, c := range rep.Conflicts {
		problems = append(problems, "left alone: "+c.Error())
	}
	if err != nil {
		problems = append(problems, "repair host network: "+err.Error())
	}
	rebuilt, err := a.fw.Repair()
	if rebuilt {
		a.drift.repairs++
		a.log.Warn("firewall table was removed or changed behind lanlink's back; rebuilt it", "table", "inet "+firewall.TableName(a.o.Interface), "trigger", why)
	}
	if err != nil {
		problems = append(problems, "repair firewall: "+err.Error())
	}
	for _, p := range problems {
		if !slices.Contains(a.drift.problems, p) {
			a.log.Error("host problem lanlink cannot repair without overriding someone else's change", "problem", p)
		}
	}
	for _, p := range a.drift.problems {
		if !slices.Contains(problems, p) {
			a.log.Info("host problem cleared", "problem", p)
		}
	}
	if !slices.Equal(problems, a.drift.problems) {
		status := a.summary()
		if len(problems) > 0 {
			status += "; problems: " + strings.Join(problems, "; ")
		}
		a.o.Notify("STATUS=" + status)
	}
	a.drift.problems = problems
}
