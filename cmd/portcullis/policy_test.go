package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPolicyEval(t *testing.T) {
	input := writeFile(t, "input.json", `{
		"identity": {"type": "apikey", "subject": "alice", "groups": ["demo"]},
		"request": {"api": "chat", "model": "gpt-4.1", "client_ip": "127.0.0.1"},
		"time": {"unix": 1795600800}
	}`)
	code, out, errOut := runCmd(t, "policy", "eval", "--input", input, "--explain", "../../policies")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{
		`"allow": false`,
		`the gateway would deny: model "gpt-4.1" is not allowed for groups ["demo"]`,
		"rules that fired:",
		"data.portcullis.decision  (../../policies/portcullis.rego:",
		"data.portcullis.deny",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// Without --explain no trace is printed.
	_, out, _ = runCmd(t, "policy", "eval", "--input", input, "../../policies")
	if strings.Contains(out, "rules that fired") {
		t.Errorf("explanation without --explain:\n%s", out)
	}
	// A malformed decision is what the gateway would deny, and says why.
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "p.rego"), []byte("package portcullis\n\ndecision := {\"allow\": \"yes\"}\n"), 0o600)
	_, out, _ = runCmd(t, "policy", "eval", "--input", input, dir)
	if !strings.Contains(out, `the gateway would deny: decision.allow is the string "yes"`) {
		t.Errorf("malformed decision:\n%s", out)
	}
	if code, _, errOut := runCmd(t, "policy", "eval", "../../policies"); code == 0 || !strings.Contains(errOut, "--input") {
		t.Errorf("missing --input: %d %s", code, errOut)
	}
}

func TestPolicyCheck(t *testing.T) {
	if code, out, errOut := runCmd(t, "policy", "check", "../../policies"); code != 0 || !strings.Contains(out, "ok (strict mode)") {
		t.Errorf("default bundle: %d %s %s", code, out, errOut)
	}
	// Strict mode refuses what a plain compile lets through: an unused
	// local variable.
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "p.rego"), []byte("package portcullis\n\ndecision := {\"allow\": true} if {\n\tunused := 1\n}\n"), 0o600)
	code, _, errOut := runCmd(t, "policy", "check", dir)
	if code != 1 || !strings.Contains(errOut, "p.rego:4") || !strings.Contains(errOut, "unused") {
		t.Errorf("strict check: %d %s", code, errOut)
	}
}

// config check refuses what serve would refuse: with require_tests, a
// policy folder whose tests fail.
func TestConfigCheckRunsPolicyTestsWhenRequired(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "p.rego"), []byte("package portcullis\n\ndecision := {\"allow\": false}\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "p_test.rego"), []byte("package portcullis_test\n\nimport data.portcullis\n\ntest_allows if portcullis.decision.allow\n"), 0o600)
	cfg := minimalConfig(t, "127.0.0.1:0", dir)
	if code, _, errOut := runCmd(t, "config", "check", "--config", cfg); code != 0 {
		t.Fatalf("without require_tests: %d %s", code, errOut)
	}
	src, _ := os.ReadFile(cfg)
	strict := strings.Replace(string(src), "policy:\n  dir: ", "policy:\n  require_tests: true\n  dir: ", 1)
	os.WriteFile(cfg, []byte(strict), 0o600)
	if code, _, errOut := runCmd(t, "config", "check", "--config", cfg); code != 1 || !strings.Contains(errOut, "test_allows") {
		t.Errorf("with require_tests and a failing test: %d %s", code, errOut)
	}
}
