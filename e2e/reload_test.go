package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
)

// policyCopy lays out a gateway folder: the example config (with edit
// applied) beside a copy of the repository's policies, which the test may
// then change while the gateway runs.
func policyCopy(t *testing.T, edit func(string) string) (cfg, policies string) {
	t.Helper()
	dir := t.TempDir()
	src, err := os.ReadFile("../config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg = filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfg, []byte(edit(string(src))), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("cp", "-r", "../policies", dir).CombinedOutput(); err != nil {
		t.Fatalf("copy policies: %v %s", err, out)
	}
	return cfg, filepath.Join(dir, "policies")
}

// callStatus makes one chat call with the demo key and returns its status.
func callStatus(t *testing.T, g *gateway, model string) int {
	t.Helper()
	client := sdkClient(g, demoKey)
	_, err := client.Chat.Completions.New(withTimeout(t), openai.ChatCompletionNewParams{
		Model:    model,
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
	})
	if err == nil {
		return 200
	}
	var apiErr *openai.Error
	if !asAPIError(err, &apiErr) {
		t.Fatalf("call failed without an API error: %v", err)
	}
	return apiErr.StatusCode
}

type readyPolicy struct {
	Policy struct {
		Revision  string `json:"revision"`
		Reloads   int    `json:"reloads"`
		Failures  int    `json:"failures"`
		LastError string `json:"last_error"`
	} `json:"policy"`
}

func readyz(t *testing.T, g *gateway) readyPolicy {
	t.Helper()
	resp, err := http.Get(g.URL() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r readyPolicy
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatal(err)
	}
	return r
}

// eventually polls cond for up to 10 s (a hang guard, not a timing
// assertion).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("gave up waiting: %s", what)
}

// The running gateway picks up an edited policy table, keeps deciding with
// the last good policy when a file breaks, and reports the breakage.
func TestPolicyHotReload(t *testing.T) {
	metricsAddr := freeAddr(t)
	cfg, policies := policyCopy(t, func(s string) string { return s + "\nmetrics:\n  listen: " + metricsAddr + "\n" })
	g := startGateway(t, cfg, "PORTCULLIS_AUDIT_FILE="+filepath.Join(t.TempDir(), "audit.log"), "OPENAI_API_KEY=")
	scrape := func() string {
		resp, err := http.Get("http://" + metricsAddr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	if st := callStatus(t, g, "demo"); st != 200 {
		t.Fatalf("before the edit: %d", st)
	}
	first := readyz(t, g).Policy.Revision

	tables := filepath.Join(policies, "tables", "data.yaml")
	data, _ := os.ReadFile(tables)
	edited := strings.Replace(string(data), `models: ["demo", "demo-*"]`, `models: ["demo-*"]`, 1)
	if edited == string(data) {
		t.Fatal("the demo group's line in tables/data.yaml changed; update this test")
	}
	if err := os.WriteFile(tables, []byte(edited), 0o600); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the edited table to take effect", func() bool { return callStatus(t, g, "demo") == 403 })
	second := readyz(t, g).Policy.Revision
	if second == first {
		t.Error("revision unchanged after a reload")
	}

	broken := filepath.Join(policies, "broken.rego")
	if err := os.WriteFile(broken, []byte("package portcullis\n\ndecision := {\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the broken file to be reported", func() bool { return strings.Contains(readyz(t, g).Policy.LastError, "broken.rego:") })
	if r := readyz(t, g); r.Policy.Revision != second || r.Policy.Failures == 0 {
		t.Errorf("after a broken reload: %+v", r.Policy)
	}
	if st := callStatus(t, g, "demo"); st != 403 {
		t.Errorf("the last good policy no longer decides: demo got %d", st)
	}
	if !strings.Contains(g.stderr.String(), "policy reload failed") {
		t.Error("the failed reload was not logged")
	}
	if m := scrape(); !strings.Contains(m, "portcullis_policy_last_reload_ok 0") || !strings.Contains(m, `portcullis_policy_info{revision="`+second+`"} 1`) {
		t.Errorf("metrics do not show the failed reload:\n%s", m)
	}
	os.Remove(broken)
	eventually(t, "the fixed folder to load", func() bool { return readyz(t, g).Policy.LastError == "" })
	if m := scrape(); !strings.Contains(m, "portcullis_policy_last_reload_ok 1") {
		t.Errorf("metrics after the fix:\n%s", m)
	}
}

// With policy.reload: signal, edits wait for SIGHUP.
func TestPolicyReloadOnSIGHUP(t *testing.T) {
	cfg, policies := policyCopy(t, func(s string) string {
		return strings.Replace(s, "\n  dir: policies\n", "\n  dir: policies\n  reload: signal\n", 1)
	})
	g := startGateway(t, cfg, "PORTCULLIS_AUDIT_FILE="+filepath.Join(t.TempDir(), "audit.log"), "OPENAI_API_KEY=")
	first := readyz(t, g).Policy.Revision
	if err := os.WriteFile(filepath.Join(policies, "extra.rego"), []byte("package portcullis\n\nextra := true\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // longer than the watch debounce: a watcher would have reloaded by now
	if r := readyz(t, g); r.Policy.Revision != first || r.Policy.Reloads != 0 {
		t.Fatalf("reloaded without a signal: %+v", r.Policy)
	}
	if err := g.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	eventually(t, "SIGHUP to reload", func() bool { return readyz(t, g).Policy.Revision != first })
}
