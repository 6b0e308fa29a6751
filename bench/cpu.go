package main

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cpuMeter tells how the machine's CPU time was shared between the
// benchmark (the harness and the servers it started) and everything else,
// so that a run on a busy machine says so instead of passing off
// contention as the gateway's cost.
type cpuMeter struct {
	// pids are the benchmark's processes.
	pids []int
}

// cpuSample is a reading of the CPU counters, in clock ticks.
type cpuSample struct {
	total, busy, steal, ours uint64
}

// CPUShare is how a stretch of time's CPU capacity was used, each as a
// fraction of all the machine's CPUs.
type CPUShare struct {
	// Ours is the harness and its servers.
	Ours float64
	// Others is every other process on the machine.
	Others float64
	// Steal is time the hypervisor gave to other machines.
	Steal float64
}

// sample reads /proc/stat and the benchmark processes' /proc/PID/stat.
func (c *cpuMeter) sample() (cpuSample, error) {
	raw, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuSample{}, fmt.Errorf("read CPU counters: %w", err)
	}
	line, _, _ := bytes.Cut(raw, []byte("\n"))
	fields := strings.Fields(string(line))
	if len(fields) < 9 || fields[0] != "cpu" {
		return cpuSample{}, fmt.Errorf("read CPU counters: unexpected /proc/stat line %q", line)
	}
	var v [8]uint64 // user nice system idle iowait irq softirq steal
	for i := range v {
		if v[i], err = strconv.ParseUint(fields[i+1], 10, 64); err != nil {
			return cpuSample{}, fmt.Errorf("read CPU counters: %w", err)
		}
	}
	var s cpuSample
	for _, n := range v {
		s.total += n
	}
	s.busy = s.total - v[3] - v[4]
	s.steal = v[7]
	for _, pid := range c.pids {
		n, err := processTicks(pid)
		if err != nil {
			return cpuSample{}, err
		}
		s.ours += n
	}
	return s, nil
}

// processTicks returns a process's user and system CPU time.
func processTicks(pid int) (uint64, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("read CPU time of process %d: %w", pid, err)
	}
	// The command name, in parentheses, may hold spaces: count fields
	// after its closing parenthesis. utime and stime are fields 14 and 15.
	rest := raw[bytes.LastIndexByte(raw, ')')+1:]
	fields := strings.Fields(string(rest))
	if len(fields) < 13 {
		return 0, fmt.Errorf("read CPU time of process %d: short /proc/%d/stat", pid, pid)
	}
	utime, err1 := strconv.ParseUint(fields[11], 10, 64)
	stime, err2 := strconv.ParseUint(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("read CPU time of process %d: bad /proc/%d/stat", pid, pid)
	}
	return utime + stime, nil
}

// shareBetween returns how the CPU time between two samples was used.
func shareBetween(a, b cpuSample) CPUShare {
	total := float64(b.total - a.total)
	if total <= 0 {
		return CPUShare{}
	}
	ours := float64(b.ours - a.ours)
	steal := float64(b.steal - a.steal)
	others := float64(b.busy-a.busy) - steal - ours
	return CPUShare{Ours: ours / total, Others: max(others, 0) / total, Steal: steal / total}
}

// quietShare is the share of the machine's CPU time other processes may
// take for the machine to count as quiet.
const quietShare = 0.10

// WaitQuiet waits until other processes leave the machine's CPUs alone
// (less than quietShare over a second), for at most *budget, and takes the
// time it waited from *budget: on a shared machine it is worth a little
// patience to measure the servers rather than someone else's build, but a
// run must end. It measures anyway once the budget is spent.
func (c *cpuMeter) WaitQuiet(ctx context.Context, budget *time.Duration) error {
	start := time.Now()
	defer func() { *budget = max(*budget-time.Since(start), 0) }()
	logged := false
	for {
		a, err := c.sample()
		if err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for a quiet machine: %w", ctx.Err())
		case <-time.After(time.Second):
		}
		b, err := c.sample()
		if err != nil {
			return err
		}
		share := shareBetween(a, b)
		busy := share.Others + share.Steal
		switch {
		case busy < quietShare:
			return nil
		case time.Since(start) >= *budget:
			log.Printf("other processes still take %s of the CPUs; measuring anyway", formatShare(busy))
			return nil
		case !logged:
			log.Printf("other processes take %s of the CPUs; waiting up to %s for them to finish", formatShare(busy), (*budget).Round(time.Second))
			logged = true
		}
	}
}

// Renice sets the scheduling niceness of every thread of this process.
// Linux keeps niceness per thread and a new thread or child process
// inherits its creator's, so the servers the harness starts afterwards run
// at the same niceness. A negative niceness, which lets the benchmark go
// before other work on a shared machine, needs root.
func Renice(n int) error {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return fmt.Errorf("renice: %w", err)
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		if err := syscall.Setpriority(syscall.PRIO_PROCESS, tid, n); err != nil {
			return fmt.Errorf("renice to %d: %w", n, err)
		}
	}
	return nil
}
