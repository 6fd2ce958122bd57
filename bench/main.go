// Command bench measures lanlink's data plane against the alternatives in
// a two-office lab on this machine (issue 5). Run it as root from the
// repository root:
//
//	sudo go run ./bench                 # every plane, 3 scenarios, 3 rounds of 10 s tests
//	sudo go run ./bench --quick         # 1 round of 3 s tests
//	sudo go run ./bench --planes raw,lanlink,wireguard-go --scenarios lab
//
// It installs missing tools from Debian packages, builds lanlink and the
// upstream wireguard-go program (from the module version lanlink embeds),
// prints a table and writes bench/results/<date>.json, .md and .svg; with
// --docs it also rewrites docs/benchmarks.md's results section and the
// chart the README links.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"lanlink/internal/bench"
)

func main() {
	os.Exit(run())
}

func run() int {
	var (
		quick     = flag.Bool("quick", false, "one round of 3 s tests (1 s warm-up)")
		planes    = flag.String("planes", strings.Join(bench.AllPlanes, ","), "data planes, comma-separated: "+strings.Join(bench.AllPlanes, ","))
		scenarios = flag.String("scenarios", "lab,wan80-500m,wan80-1g", "WAN scenarios, comma-separated: lab, wan80-500m, wan80-1g")
		rounds    = flag.Int("rounds", 3, "rounds per plane and scenario (medians are reported)")
		duration  = flag.Duration("duration", 10*time.Second, "length of each iperf3 test")
		omit      = flag.Duration("omit", 2*time.Second, "iperf3 warm-up left out of each result (slow start on long links)")
		outDir    = flag.String("out", "bench/results", "directory for <date>.json, .md and .svg")
		docs      = flag.Bool("docs", false, "also write docs/benchmarks-results.md and docs/benchmarks.svg")
		profile   = flag.String("profile", "", "directory for CPU profiles of the lanlink agents (first scenario, first round)")
		noInstall = flag.Bool("no-install", false, "do not apt-get install missing tools")
		lanlink   = flag.String("lanlink", "", "lanlink binary to use (default: build ./cmd/lanlink)")
		verbose   = flag.Bool("v", false, "log lab and emulator events")
		workDir   = flag.String("workdir", "", "keep keys, configs and tunnel logs in this directory (default: a temporary one, removed)")
		render    = flag.String("render", "", "render the table and chart of an earlier run's JSON instead of running")
		llEnv     = flag.String("lanlink-env", "", "extra environment for the lanlink agents, comma-separated (e.g. GOGC=400), for experiments")
	)
	flag.Parse()
	opts := bench.Options{Rounds: *rounds, Duration: *duration, Omit: *omit, ProfileDir: *profile, LanlinkBin: *lanlink, Progress: os.Stderr}
	if *workDir != "" {
		if err := os.MkdirAll(*workDir, 0o755); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 1
		}
		opts.WorkDir, _ = filepath.Abs(*workDir)
	}
	if *llEnv != "" {
		opts.LanlinkEnv = strings.Split(*llEnv, ",")
	}
	if *quick {
		opts.Rounds, opts.Duration, opts.Omit = 1, 3*time.Second, time.Second
	}
	for _, p := range strings.Split(*planes, ",") {
		if p = strings.TrimSpace(p); p != "" {
			opts.Planes = append(opts.Planes, p)
		}
	}
	for _, s := range strings.Split(*scenarios, ",") {
		i := slices.IndexFunc(bench.DefaultScenarios, func(d bench.Scenario) bool { return d.Name == strings.TrimSpace(s) })
		if i < 0 {
			fmt.Fprintf(os.Stderr, "bench: unknown scenario %q\n", s)
			return 2
		}
		opts.Scenarios = append(opts.Scenarios, bench.DefaultScenarios[i])
	}
	if *verbose {
		opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	if *profile != "" {
		if err := os.MkdirAll(*profile, 0o755); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 1
		}
		abs, _ := filepath.Abs(*profile)
		opts.ProfileDir = abs
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *render != "" {
		b, err := os.ReadFile(*render)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 1
		}
		var rep bench.Report
		if err := json.Unmarshal(b, &rep); err != nil {
			fmt.Fprintf(os.Stderr, "bench: %s: %v\n", *render, err)
			return 1
		}
		return write(&rep, *outDir, *docs)
	}
	if !*noInstall {
		if err := bench.EnsureTools(ctx, opts.Planes, os.Stderr); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 1
		}
	}
	rep, err := bench.Run(ctx, opts)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	return write(rep, *outDir, *docs)
}

// write prints the table and targets and writes the JSON, Markdown and SVG
// files of a report.
func write(rep *bench.Report, outDir string, docs bool) int {
	var md bytes.Buffer
	fmt.Fprintf(&md, "Run %s on %s (%d CPUs, kernel %s), load before %s, after %s; %d round(s) of %v iperf3 tests after %v warm-up, medians.\n\n",
		rep.Date.Format(time.RFC3339), rep.Host.CPUModel, rep.Host.CPUs, rep.Host.Kernel, rep.Host.LoadBefore, rep.Host.LoadAfter,
		rep.Options.Rounds, rep.Options.Duration, rep.Options.Omit)
	rep.WriteTable(&md)
	md.WriteString("\nTargets (issue 5):\n\n")
	rep.WriteTargets(&md)
	md.WriteString("\nVersions: ")
	var vs []string
	for k, v := range rep.Versions {
		vs = append(vs, k+" "+v)
	}
	slices.Sort(vs)
	md.WriteString(strings.Join(vs, ", ") + "\n")
	os.Stdout.Write(md.Bytes())

	var js, svg bytes.Buffer
	rep.WriteJSON(&js)
	rep.WriteSVG(&svg)
	stamp := rep.Date.Format("2006-01-02T150405Z")
	files := map[string][]byte{
		filepath.Join(outDir, stamp+".json"): js.Bytes(),
		filepath.Join(outDir, stamp+".md"):   md.Bytes(),
		filepath.Join(outDir, stamp+".svg"):  svg.Bytes(),
	}
	if docs {
		files["docs/benchmarks-results.md"] = md.Bytes()
		files["docs/benchmarks.svg"] = svg.Bytes()
	}
	for path, b := range files {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 1
		}
		if err := os.WriteFile(path, b, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			return 1
		}
		fmt.Fprintln(os.Stderr, "wrote", path)
	}
	return 0
}
