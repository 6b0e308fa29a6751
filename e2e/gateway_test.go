// Package e2e starts the real portcullis binary, as a user would, and talks
// to it with real clients: the official OpenAI Go SDK and the README's own
// curl commands.
package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// binary is the gateway built once for the whole package.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "portcullis-e2e")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "portcullis")
	build := exec.Command("go", "build", "-o", binary, "../cmd/portcullis")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build portcullis:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// gateway is a running portcullis process.
type gateway struct {
	addr   string // host:port
	cmd    *exec.Cmd
	stderr *lockedBuffer
	done   chan error
}

// URL returns the gateway's base URL.
func (g *gateway) URL() string { return "http://" + g.addr }

// startGateway runs `portcullis serve --config cfg` on a free loopback port
// (through PORTCULLIS_LISTEN, which the example config reads) and waits
// until /readyz answers. The process is stopped when the test ends.
func startGateway(t *testing.T, cfg string, env ...string) *gateway {
	t.Helper()
	return startGatewayAt(t, freeAddr(t), cfg, env...)
}

// startGatewayAt is startGateway on a given address, for a configuration
// that must know it beforehand (an IdP's redirect URI, say).
func startGatewayAt(t *testing.T, addr, cfg string, env ...string) *gateway {
	t.Helper()
	g := &gateway{addr: addr, stderr: &lockedBuffer{}, done: make(chan error, 1)}
	g.cmd = exec.Command(binary, "serve", "--config", cfg)
	// Each gateway counts usage in a file of its own unless the test says
	// otherwise (a later entry wins).
	g.cmd.Env = append(os.Environ(), append([]string{"PORTCULLIS_LISTEN=" + addr,
		"PORTCULLIS_USAGE_FILE=" + filepath.Join(t.TempDir(), "usage.log")}, env...)...)
	g.cmd.Stderr = g.stderr
	g.cmd.Stdout = g.stderr
	if err := g.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { g.done <- g.cmd.Wait() }()
	t.Cleanup(func() {
		_ = g.cmd.Process.Signal(syscall.SIGKILL)
		<-g.done
		if t.Failed() {
			t.Logf("gateway log:\n%s", g.stderr.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(g.URL() + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return g
			}
		}
		select {
		case err := <-g.done:
			g.done <- err // for the cleanup, which waits for it
			t.Fatalf("gateway exited during start-up (%v):\n%s", err, g.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway not ready:\n%s", g.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop sends SIGTERM and waits for the process to exit.
func (g *gateway) stop(t *testing.T) error {
	t.Helper()
	if err := g.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-g.done:
		g.done <- err // for the cleanup
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("gateway did not exit after SIGTERM")
		return nil
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// exampleConfig is the repository's own config.example.yaml, used as is.
func exampleConfig(t *testing.T) (cfg string, auditFile string) {
	t.Helper()
	cfg, err := filepath.Abs("../config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return cfg, filepath.Join(t.TempDir(), "audit.log")
}

func withTimeout(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
