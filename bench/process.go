package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Limits on a server the harness starts.
const (
	readyTimeout = 30 * time.Second
	stopTimeout  = 10 * time.Second
)

// process is a server the harness started on 127.0.0.1 and stops when it
// is done: the fake upstream, the bare proxy, or the gateway.
type process struct {
	name string
	// URL is the server's root, http://127.0.0.1:PORT.
	URL     string
	cmd     *exec.Cmd
	logPath string
	exited  chan struct{} // closed once the process has exited
	waitErr error         // valid after exited is closed
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// startProcess runs argv with its output in logPath and waits until
// GET addr+readyPath answers 200. The process is killed if the harness
// dies, so no server outlives a run.
func startProcess(ctx context.Context, name, addr, readyPath, logPath string, argv ...string) (*process, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	defer logFile.Close() // the child holds its own copy
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{name: name, URL: "http://" + addr, cmd: cmd, logPath: logPath, exited: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	if err := p.waitReady(ctx, readyPath); err != nil {
		p.Stop()
		return nil, err
	}
	return p, nil
}

// waitReady polls the server until it answers 200, it exits, or time is up.
func (p *process) waitReady(ctx context.Context, path string) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{Proxy: nil}}
	defer client.CloseIdleConnections()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.URL+path, nil)
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-p.exited:
			return fmt.Errorf("%s exited before it was ready (%v); its log ends:\n%s", p.name, p.waitErr, p.logTail(20))
		case <-ctx.Done():
			return fmt.Errorf("%s not ready at %s%s after %s: %w; its log ends:\n%s", p.name, p.URL, path, readyTimeout, ctx.Err(), p.logTail(20))
		case <-tick.C:
		}
	}
}

// Stop asks the server to shut down with SIGTERM and kills it if it has
// not exited within stopTimeout. It returns the process's exit error, if
// it exited on its own account rather than because it was asked to.
func (p *process) Stop() error {
	select {
	case <-p.exited:
		return p.exitError()
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
		return p.exitError()
	case <-time.After(stopTimeout):
		_ = p.cmd.Process.Kill()
		<-p.exited
		return fmt.Errorf("%s did not stop within %s of SIGTERM and was killed", p.name, stopTimeout)
	}
}

func (p *process) exitError() error {
	var exit *exec.ExitError
	if errors.As(p.waitErr, &exit) && exit.Sys().(syscall.WaitStatus).Signaled() {
		return nil // ended by our SIGTERM
	}
	if p.waitErr != nil {
		return fmt.Errorf("%s: %w; its log ends:\n%s", p.name, p.waitErr, p.logTail(20))
	}
	return nil
}

// ResetPeakRSS starts a new peak resident set size measurement: writing 5
// to /proc/PID/clear_refs sets VmHWM to the current VmRSS.
func (p *process) ResetPeakRSS() error {
	path := fmt.Sprintf("/proc/%d/clear_refs", p.cmd.Process.Pid)
	if err := os.WriteFile(path, []byte("5"), 0); err != nil {
		return fmt.Errorf("reset peak RSS of %s: %w", p.name, err)
	}
	return nil
}

// PeakRSS returns the process's peak resident set size (VmHWM) in bytes
// since it started or since the last ResetPeakRSS.
func (p *process) PeakRSS() (int64, error) {
	return p.status("VmHWM")
}

// RSS returns the process's current resident set size in bytes.
func (p *process) RSS() (int64, error) {
	return p.status("VmRSS")
}

// status reads one "Key: N kB" line of /proc/PID/status.
func (p *process) status(key string) (int64, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0, fmt.Errorf("read %s of %s: %w", key, p.name, err)
	}
	return procKB(raw, key)
}

// procKB finds "key: N kB" in a /proc file and returns N KiB in bytes.
func procKB(raw []byte, key string) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(raw))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || k != key {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parse %s %q: %w", key, v, err)
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("no %s line", key)
}

// logTail returns the last n lines of the process's output.
func (p *process) logTail(n int) string {
	raw, err := os.ReadFile(p.logPath)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(raw), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "  " + strings.Join(lines, "\n  ")
}
