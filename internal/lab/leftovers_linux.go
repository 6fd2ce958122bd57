package lab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// CleanupLeftovers deletes the namespaces of dead labs: those left behind
// when a process that built a lab was killed before Close. id selects one
// lab ("ll3k9a"); "" selects every lab. Only names that follow the lab
// scheme ("ll" + 4 of [0-9a-z] + "-inet" / "-oNr" / "-oNg" / "-oNhM") are
// considered; nothing else is ever touched.
//
// A lab is dead when no process holds any of its namespaces, neither by
// running in it nor by an open file descriptor (a live Lab keeps one open
// per namespace). A live lab is skipped and reported with ErrLabInUse.
// Processes are never signalled: a live lab's owner must Close it. A dead
// lab's directory (the nodes' RunDirs) is removed with its namespaces.
// It returns the namespaces it deleted.
func CleanupLeftovers(ctx context.Context, id string) ([]string, error) {
	if id != "" && !idRe.MatchString(id) {
		return nil, fmt.Errorf("%w: lab ID %q: want \"ll\" and 4 characters of [0-9a-z]", ErrConfig, id)
	}
	names, err := listNetns()
	if err != nil {
		return nil, err
	}
	labs := map[string][]string{}
	for _, name := range names {
		m := nsNameRe.FindStringSubmatch(name)
		if m == nil || (id != "" && m[1] != id) {
			continue
		}
		labs[m[1]] = append(labs[m[1]], name)
	}
	if len(labs) == 0 {
		return nil, nil
	}
	held, err := heldNetns()
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	ids := make([]string, 0, len(labs))
	for lid := range labs {
		ids = append(ids, lid)
	}
	slices.Sort(ids)
	for _, lid := range ids {
		nss := labs[lid]
		if user := labUser(nss, held); user != "" {
			errs = append(errs, fmt.Errorf("lab %s: %w (%s); stop that process or let it close the lab", lid, ErrLabInUse, user))
			continue
		}
		for _, name := range nss {
			if err := deleteNetns(ctx, lid, name); err != nil {
				errs = append(errs, err)
				continue
			}
			removed = append(removed, name)
		}
		if err := os.RemoveAll(labDir(lid)); err != nil {
			errs = append(errs, fmt.Errorf("lab %s: remove directory: %w", lid, err))
		}
	}
	return removed, errors.Join(errs...)
}

// labUser names a process holding one of the namespaces, or "".
func labUser(nss []string, held map[uint64]string) string {
	for _, name := range nss {
		var st syscall.Stat_t
		if err := syscall.Stat(filepath.Join(netnsDir, name), &st); err != nil {
			continue
		}
		if who, ok := held[st.Ino]; ok {
			return name + " held by " + who
		}
	}
	return ""
}

// heldNetns maps the inode of every network namespace some process is in
// (any thread) or holds an fd to, to a description of one such process.
// Processes that vanish while scanning are skipped.
func heldNetns() (map[uint64]string, error) {
	pids, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("scan processes: %w", err)
	}
	held := map[uint64]string{}
	note := func(link, who string) {
		// Links look like "net:[4026532291]".
		rest, ok := strings.CutPrefix(link, "net:[")
		if !ok {
			return
		}
		ino, err := strconv.ParseUint(strings.TrimSuffix(rest, "]"), 10, 64)
		if err == nil {
			if _, seen := held[ino]; !seen {
				held[ino] = who
			}
		}
	}
	for _, e := range pids {
		pid := e.Name()
		if _, err := strconv.Atoi(pid); err != nil {
			continue
		}
		who := "pid " + pid
		if comm, err := os.ReadFile("/proc/" + pid + "/comm"); err == nil {
			who += " (" + strings.TrimSpace(string(comm)) + ")"
		}
		tasks, _ := os.ReadDir("/proc/" + pid + "/task")
		for _, t := range tasks {
			if link, err := os.Readlink("/proc/" + pid + "/task/" + t.Name() + "/ns/net"); err == nil {
				note(link, who)
			}
		}
		fds, _ := os.ReadDir("/proc/" + pid + "/fd")
		for _, fd := range fds {
			path := "/proc/" + pid + "/fd/" + fd.Name()
			link, err := os.Readlink(path)
			if err != nil {
				continue
			}
			if !strings.Contains(link, "/netns/") {
				note(link, who) // opened via /proc/…/ns/net: "net:[ino]"
				continue
			}
			// Opened by name: the link is the bind-mount path, which may
			// have been deleted and reused; the inode is what counts.
			var st syscall.Stat_t
			if syscall.Stat(path, &st) == nil {
				note("net:["+strconv.FormatUint(st.Ino, 10)+"]", who)
			}
		}
	}
	return held, nil
}

// ProcessesIn returns the PIDs of the processes running in any namespace of
// lab id (any of their threads). `lanlink lab down` uses it to stop what a
// lab left running when its record of PIDs is lost: every process in a
// lab's namespaces was started for the lab.
func ProcessesIn(id string) ([]int, error) {
	if !idRe.MatchString(id) {
		return nil, fmt.Errorf("%w: lab ID %q: want \"ll\" and 4 characters of [0-9a-z]", ErrConfig, id)
	}
	names, err := listNetns()
	if err != nil {
		return nil, err
	}
	inos := map[uint64]bool{}
	for _, name := range names {
		if m := nsNameRe.FindStringSubmatch(name); m == nil || m[1] != id {
			continue
		}
		var st syscall.Stat_t
		if err := syscall.Stat(filepath.Join(netnsDir, name), &st); err == nil {
			inos[st.Ino] = true
		}
	}
	if len(inos) == 0 {
		return nil, nil
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, fmt.Errorf("scan processes: %w", err)
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		tasks, _ := os.ReadDir("/proc/" + e.Name() + "/task")
		for _, t := range tasks {
			link, err := os.Readlink("/proc/" + e.Name() + "/task/" + t.Name() + "/ns/net")
			if err != nil {
				continue
			}
			rest, ok := strings.CutPrefix(link, "net:[")
			ino, perr := strconv.ParseUint(strings.TrimSuffix(rest, "]"), 10, 64)
			if ok && perr == nil && inos[ino] {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids, nil
}
