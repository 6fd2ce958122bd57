//go:build linux

package hostnet

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"

	"github.com/vishvananda/netns"
)

// sysctls reads and writes /proc/sys/net. Which namespace a /proc/sys/net
// file belongs to is decided by the network namespace of the *thread* that
// opens it (checked on Linux 6.18: a thread moved with setns sees and
// changes the namespace's values, other threads keep seeing their own). So
// with a namespace set, every access runs on a dedicated locked thread
// that enters the namespace, proves it is there, and leaves again.
type sysctls struct {
	ns netns.NsHandle // netns.None(): the caller's namespace
}

func sysctlPath(f Family) string {
	return "/proc/sys/" + strings.ReplaceAll(f.SysctlName(), ".", "/")
}

func (s sysctls) read(f Family) (string, error) {
	var v string
	err := s.in(func() error {
		b, err := os.ReadFile(sysctlPath(f))
		if err != nil {
			return err
		}
		v = strings.TrimSpace(string(b))
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("read %s: %w", f.SysctlName(), err)
	}
	return v, nil
}

func (s sysctls) write(f Family, v string) error {
	err := s.in(func() error {
		return os.WriteFile(sysctlPath(f), []byte(v+"\n"), 0o644)
	})
	if err != nil {
		return fmt.Errorf("set %s=%s: %w", f.SysctlName(), v, err)
	}
	return nil
}

func (s sysctls) in(fn func() error) error {
	if !s.ns.IsOpen() {
		return fn()
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("get current network namespace: %w", err)
			return
		}
		defer orig.Close()
		if err := netns.Set(s.ns); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter network namespace: %w", err)
			return
		}
		// Never touch a sysctl unless the thread provably is in the
		// target namespace: a wrong write here would change the host.
		cur, err := netns.Get()
		inside := err == nil && cur.Equal(s.ns)
		cur.Close()
		var ferr error
		if inside {
			ferr = fn()
		} else {
			ferr = errors.New("thread did not enter the network namespace; refusing to touch sysctls")
		}
		if err := netns.Set(orig); err != nil {
			// Leave the thread locked: the runtime ends it with this
			// goroutine instead of reusing it in the wrong namespace.
			errc <- errors.Join(ferr, fmt.Errorf("return to original network namespace: %w", err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}
