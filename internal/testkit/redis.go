package testkit

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// StartRedis starts a real redis-server on a free loopback port (never
// 6379), keeping nothing on disk, and stops it when the test ends. It
// returns its redis:// URL. Without redis-server installed the test
// fails, saying how to install it: a test that skips proves nothing.
func StartRedis(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatal("redis-server is not installed; `make deps` (scripts/deps.sh) installs it")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	p := strconv.Itoa(port)
	dir := t.TempDir()
	out, err := os.Create(dir + "/redis.log")
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd := exec.Command(bin, "--port", p, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", dir)
	cmd.Stdout, cmd.Stderr = out, out
	logText := func() string { b, _ := os.ReadFile(dir + "/redis.log"); return string(b) }
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = exec.Command("redis-cli", "-p", p, "shutdown", "nosave").Run()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	for deadline := time.Now().Add(10 * time.Second); ; {
		if c, err := net.Dial("tcp", "127.0.0.1:"+p); err == nil {
			fmt.Fprint(c, "PING\r\n")
			buf := make([]byte, 7)
			n, _ := c.Read(buf)
			c.Close()
			if strings.HasPrefix(string(buf[:n]), "+PONG") {
				return "redis://127.0.0.1:" + p
			}
		}
		select {
		case <-done:
			t.Fatalf("redis-server exited: %s", logText())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server did not answer: %s", logText())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
