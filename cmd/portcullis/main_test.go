package main

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"portcullis/authn"
	"portcullis/config"
)

func runCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestVersionAndUsage(t *testing.T) {
	if code, out, _ := runCmd(t, "version"); code != 0 || !strings.HasPrefix(out, "portcullis ") {
		t.Errorf("version: %d %q", code, out)
	}
	if code, _, errOut := runCmd(t, "frobnicate"); code != 2 || !strings.Contains(errOut, "usage:") {
		t.Errorf("unknown command: %d %q", code, errOut)
	}
}

// keys generate prints a key once and an entry the config loader accepts,
// whose hash is the key's.
func TestKeysGenerate(t *testing.T) {
	code, out, _ := runCmd(t, "keys", "generate", "--subject", "alice", "--group", "engineering", "--group", "ml")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	key := regexp.MustCompile(`# (pcx_[A-Za-z0-9_-]{43})\n`).FindStringSubmatch(out)
	if key == nil {
		t.Fatalf("no key in output:\n%s", out)
	}
	var entry []string
	for _, l := range strings.Split(out, "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			entry = append(entry, "    "+l)
		}
	}
	yaml := "auth:\n  api_keys:\n" + strings.Join(entry, "\n") + "\naudit:\n  stdout: true\n"
	cfg, err := config.Parse("generated.yaml", []byte(yaml), os.LookupEnv)
	if err != nil {
		t.Fatalf("generated entry does not load: %v\n%s", err, yaml)
	}
	k := cfg.Auth.APIKeys[0]
	if k.Hash != authn.HashKey(key[1]) || k.Subject != "alice" || strings.Join(k.Groups, ",") != "engineering,ml" {
		t.Errorf("entry %+v does not match key", k)
	}
	if strings.Contains(yaml, key[1]) {
		t.Error("the config entry holds the key itself")
	}
	if code, _, errOut := runCmd(t, "keys", "generate"); code == 0 || !strings.Contains(errOut, "--subject") {
		t.Errorf("missing subject: %d %q", code, errOut)
	}
}

func TestConfigCheck(t *testing.T) {
	code, out, errOut := runCmd(t, "config", "check", "--config", "../../config.example.yaml")
	if code != 0 || !strings.Contains(out, ": ok") || !strings.Contains(out, "compile (revision ") {
		t.Errorf("example config: %d %q %q", code, out, errOut)
	}
	t.Setenv("PORTCULLIS_LISTEN", "0.0.0.0:8080")
	if code, _, errOut := runCmd(t, "config", "check", "--config", "../../config.example.yaml"); code != 1 || !strings.Contains(errOut, "published demo key") {
		t.Errorf("demo key off loopback passed config check: %d %q", code, errOut)
	}
	bad := writeFile(t, "bad.yaml", "server:\n  listn: 1\nproviders:\n  - name: x\n    type: nope\n")
	code, _, errOut = runCmd(t, "config", "check", "--config", bad)
	if code != 1 || !strings.Contains(errOut, "line 2: server.listn: unknown field") || !strings.Contains(errOut, `did you mean "listen"`) {
		t.Errorf("bad config: %d %q", code, errOut)
	}
}

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// minimalConfig is a config with the demo key, listening on addr, using
// the policy folder dir.
func minimalConfig(t *testing.T, addr, dir string) string {
	t.Helper()
	return writeFile(t, "config.yaml", `server:
  listen: `+addr+`
providers:
  - name: demo
    type: demo
models:
  - name: demo
    provider: demo
auth:
  api_keys:
    - name: demo
      hash: `+authn.HashKey("pcx_demo_not_a_secret")+`
      subject: demo-user
      demo: true
policy:
  dir: `+dir+`
audit:
  file: `+filepath.Join(t.TempDir(), "audit.log")+`
`)
}

func TestServeRefusesDemoKeyOffLoopback(t *testing.T) {
	policies, _ := filepath.Abs("../../policies")
	code, _, errOut := runCmd(t, "serve", "--config", minimalConfig(t, "0.0.0.0:0", policies))
	if code != 1 || !strings.Contains(errOut, "published demo key") || !strings.Contains(errOut, "0.0.0.0:0") {
		t.Errorf("exit %d: %s", code, errOut)
	}
}

// A policy that does not compile stops start-up with its file, line and
// the compiler's message.
func TestServeStopsOnPolicyCompileError(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "broken.rego"), []byte("package portcullis\n\ndecision := {\"allow\": true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := runCmd(t, "serve", "--config", minimalConfig(t, "127.0.0.1:0", dir))
	if code != 1 || !strings.Contains(errOut, "broken.rego:4: rego_parse_error: unexpected eof token") {
		t.Errorf("exit %d: %s", code, errOut)
	}
}

func TestPolicyTestCommand(t *testing.T) {
	code, out, _ := runCmd(t, "policy", "test", "../../policies")
	if code != 0 || !regexp.MustCompile(`policy: [1-9]\d* passed, 0 failed`).MatchString(out) {
		t.Errorf("repo policies: %d\n%s", code, out)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "p.rego"), []byte("package portcullis\n\ndecision := {\"allow\": false}\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "p_test.rego"), []byte("package portcullis_test\n\nimport data.portcullis\n\ntest_allows if portcullis.decision.allow\n"), 0o600)
	code, out, errOut := runCmd(t, "policy", "test", dir)
	if code != 1 || !strings.Contains(out, "FAIL data.portcullis_test.test_allows") || !strings.Contains(errOut, "1 of 1 tests failed") {
		t.Errorf("failing policy: %d\n%s\n%s", code, out, errOut)
	}
}
