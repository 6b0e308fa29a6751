// Command bench measures what Portcullis costs in front of an LLM provider
// and writes the results into BENCHMARKS.md.
//
// It starts a fast fake OpenAI upstream, a bare httputil.ReverseProxy to it,
// and the real gateway built from this repository (API key, Rego policy and
// audit on), each as its own process on 127.0.0.1, and drives each in turn
// with the same vegeta load generator: a fixed rate for latency, a closed
// loop for saturation throughput, non-streamed and streamed calls. Every
// attack is bounded in time, and every process is stopped at the end.
//
//	bench [-out FILE] [-repo DIR] [-duration 10s] [-rate 500] [-workers 64] ...
//	bench upstream -listen ADDR [-event-delay D]   serve the fake upstream
//	bench proxy -listen ADDR -upstream URL         serve the bare proxy
//
// `make bench` at the repository root runs it with the defaults.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("bench: ")
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := dispatch(ctx, os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(2)
		}
		log.Print(err)
		os.Exit(1)
	}
}

func dispatch(ctx context.Context, args []string) error {
	if len(args) > 0 {
		switch args[0] {
		case "upstream":
			return serveUpstream(ctx, args[1:])
		case "proxy":
			return serveProxy(ctx, args[1:])
		}
	}
	return runBench(ctx, args)
}

// harness holds what one run of the benchmark needs.
type harness struct {
	settings Settings
	load     *Load
	cpu      *cpuMeter
	// quietWait is what is left of the time the run may spend waiting
	// for other processes to leave the CPUs alone.
	quietWait time.Duration
}

// server is one of the servers measured.
type server struct {
	name string
	proc *process
	// calls counts every call sent to it.
	calls int
}

func runBench(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	out := fs.String("out", "../BENCHMARKS.md", "Markdown `file` to write the results into")
	repo := fs.String("repo", "..", "the Portcullis repository `folder`, to build the gateway and find policies/")
	s := Settings{}
	fs.DurationVar(&s.Duration, "duration", 10*time.Second, "length of each fixed-rate and each saturation run")
	fs.DurationVar(&s.Warmup, "warmup", 2*time.Second, "length of the warm-up before each server's runs")
	fs.IntVar(&s.Rate, "rate", 500, "requests per second of the fixed-rate run")
	fs.IntVar(&s.Workers, "workers", 64, "concurrent callers (and connections) of the saturation run")
	fs.DurationVar(&s.EventDelay, "event-delay", 0, "the fake upstream's pause before each streamed event or body")
	fs.DurationVar(&s.QuietWait, "quiet-wait", 2*time.Minute, "longest total wait for other processes to leave the CPUs alone before measuring")
	rev := fs.String("rev", "", "measure the gateway as committed at this git `revision` (default: the work tree as it is)")
	fs.IntVar(&s.Nice, "nice", -10, "scheduling niceness of the harness and its servers: below 0 they go before other work on a shared machine (needs root); 0 leaves it")
	keep := fs.Bool("keep", false, "keep the work folder (configuration, logs, audit file) instead of removing it")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if s.Duration <= 0 || s.Rate <= 0 || s.Workers <= 0 || s.Warmup < 0 || s.QuietWait < 0 {
		return errors.New("-duration, -rate and -workers must be positive, -warmup and -quiet-wait not negative")
	}
	if s.Nice != 0 {
		if err := Renice(s.Nice); err != nil {
			log.Printf("%v; running at the default priority", err)
			s.Nice = 0
		}
	}
	// Every run ends: a generous bound on the whole, beyond the attacks'
	// own durations and the per-call timeout.
	perServer := s.Warmup + 2*s.Duration + 3*requestTimeout
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute+s.QuietWait+time.Duration(len(Modes)*3)*perServer)
	defer cancel()

	work, err := os.MkdirTemp("", "portcullis-bench-")
	if err != nil {
		return fmt.Errorf("make the work folder: %w", err)
	}
	if *keep {
		log.Printf("work folder: %s", work)
	} else {
		defer os.RemoveAll(work)
	}

	var commit string
	if *rev != "" {
		src := filepath.Join(work, "src")
		if err := exportRevision(ctx, *repo, *rev, src); err != nil {
			return err
		}
		commit = describeRevision(ctx, *repo, *rev)
		*repo = src
	} else {
		commit = describeCommit(ctx, *repo)
	}
	report, err := run(ctx, s, *repo, work)
	if err != nil {
		return err
	}
	report.Commit = commit
	if err := report.WriteFile(*out); err != nil {
		return err
	}
	log.Printf("wrote %s", *out)
	return nil
}

// run starts the servers, measures them, stops them, and returns the report.
func run(ctx context.Context, s Settings, repo, work string) (*Report, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find the harness's own binary: %w", err)
	}
	log.Print("building the gateway")
	gw, err := buildGateway(ctx, repo, work)
	if err != nil {
		return nil, err
	}

	addrs := make([]string, 3)
	for i := range addrs {
		if addrs[i], err = freeAddr(); err != nil {
			return nil, err
		}
	}
	upstream, err := startProcess(ctx, "fake upstream", addrs[0], "/healthz", filepath.Join(work, "upstream.log"),
		self, "upstream", "-listen", addrs[0], "-event-delay", s.EventDelay.String())
	if err != nil {
		return nil, err
	}
	defer upstream.Stop()
	proxy, err := startProcess(ctx, "bare proxy", addrs[1], "/healthz", filepath.Join(work, "proxy.log"),
		self, "proxy", "-listen", addrs[1], "-upstream", upstream.URL)
	if err != nil {
		return nil, err
	}
	defer proxy.Stop()
	if err := gw.configure(ctx, work, repo, addrs[2], upstream.URL); err != nil {
		return nil, err
	}
	gateway, err := startProcess(ctx, "gateway", addrs[2], "/readyz", filepath.Join(work, "portcullis.log"), gw.serveArgs()...)
	if err != nil {
		return nil, err
	}
	defer gateway.Stop()

	h := &harness{settings: s, quietWait: s.QuietWait, load: &Load{Key: gw.key}, cpu: &cpuMeter{pids: []int{
		os.Getpid(), upstream.cmd.Process.Pid, proxy.cmd.Process.Pid, gateway.cmd.Process.Pid,
	}}}
	servers := []*server{
		{name: "upstream, direct", proc: upstream},
		{name: "bare httputil.ReverseProxy", proc: proxy},
		{name: "Portcullis (API key + policy + audit)", proc: gateway},
	}
	for _, srv := range servers {
		if err := h.load.Probe(ctx, srv.proc.URL); err != nil {
			return nil, fmt.Errorf("%s: %w", srv.name, err)
		}
		srv.calls += len(Modes)
	}

	report := &Report{
		Date:     time.Now(),
		Machine:  describeMachine(),
		Settings: s,
	}
	for _, mode := range Modes {
		for _, srv := range servers {
			row, err := h.measure(ctx, srv, mode)
			if err != nil {
				return nil, err
			}
			report.Rows = append(report.Rows, *row)
		}
	}

	// The gateway writes its last records as it stops.
	if err := gateway.Stop(); err != nil {
		return nil, err
	}
	report.GatewayCalls = servers[2].calls
	if report.AuditRecords, err = gw.auditRecords(); err != nil {
		return nil, err
	}
	return report, nil
}

// measure runs one mode against one server: warm-up, fixed rate, saturation.
func (h *harness) measure(ctx context.Context, srv *server, mode Mode) (*Row, error) {
	s := h.settings
	if err := h.cpu.WaitQuiet(ctx, &h.quietWait); err != nil {
		return nil, err
	}
	if err := srv.proc.ResetPeakRSS(); err != nil {
		return nil, err
	}
	attacks := []Attack{
		{URL: srv.proc.URL, Mode: mode, Rate: s.Rate, Workers: 16, Duration: s.Warmup},
		{URL: srv.proc.URL, Mode: mode, Rate: s.Rate, Workers: 16, Duration: s.Duration},
		{URL: srv.proc.URL, Mode: mode, Workers: s.Workers, Duration: s.Duration},
	}
	results := make([]*Measurement, len(attacks))
	var before cpuSample
	for i, a := range attacks {
		if i == 1 { // the measured runs begin
			var err error
			if before, err = h.cpu.sample(); err != nil {
				return nil, err
			}
		}
		if a.Duration == 0 {
			results[i] = &Measurement{}
			continue
		}
		m, err := h.load.Run(ctx, a)
		if err != nil {
			return nil, fmt.Errorf("%s, %s calls: %w", srv.name, mode.Name, err)
		}
		srv.calls += m.Requests
		results[i] = m
	}
	after, err := h.cpu.sample()
	if err != nil {
		return nil, err
	}
	peak, err := srv.proc.PeakRSS()
	if err != nil {
		return nil, err
	}
	row := &Row{Mode: mode, Server: srv.name, Fixed: results[1], Saturation: results[2], PeakRSS: peak, CPU: shareBetween(before, after)}
	log.Printf("%-40s %-14s p50 %s  p99 %s  failed %d of %d | saturation %s req/s, success %s | peak RSS %s | CPU: ours %s, others %s",
		srv.name, mode.Name, formatLatency(row.Fixed.Quantile(0.5)), formatLatency(row.Fixed.Quantile(0.99)),
		row.Fixed.Failed(), row.Fixed.Requests, formatRate(row.Saturation.Throughput()),
		formatPercent(row.Saturation.SuccessRatio()), formatBytes(peak),
		formatShare(row.CPU.Ours), formatShare(row.CPU.Others))
	return row, nil
}

// serveUpstream runs the fake upstream until SIGTERM or SIGINT.
func serveUpstream(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bench upstream", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:0", "`address` to listen on")
	delay := fs.Duration("event-delay", 0, "pause before each streamed event or body")
	if err := fs.Parse(args); err != nil {
		return err
	}
	u, err := NewUpstream(*delay)
	if err != nil {
		return err
	}
	return serveUntilDone(ctx, *listen, u)
}

// serveProxy runs the bare proxy until SIGTERM or SIGINT.
func serveProxy(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bench proxy", flag.ContinueOnError)
	listen := fs.String("listen", "127.0.0.1:0", "`address` to listen on")
	upstream := fs.String("upstream", "", "the upstream's root `URL`, http://127.0.0.1:PORT")
	if err := fs.Parse(args); err != nil {
		return err
	}
	p, err := NewBareProxy(*upstream)
	if err != nil {
		return err
	}
	return serveUntilDone(ctx, *listen, p)
}

// serveUntilDone serves h on a loopback address until ctx is done, then
// shuts down, letting in-flight calls finish for a few seconds.
func serveUntilDone(ctx context.Context, addr string, h http.Handler) error {
	host, _, err := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("listen %s: the harness serves on loopback addresses only", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shut down: %w", err)
	}
	return nil
}
