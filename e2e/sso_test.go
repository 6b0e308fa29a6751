package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
)

// browserReport is what e2e/browser/signin.mjs prints.
type browserReport struct {
	Steps []struct {
		Name  string `json:"name"`
		URL   string `json:"url"`
		Title string `json:"title"`
	} `json:"steps"`
	Home struct {
		URL, Title, Text string
	} `json:"home"`
	Reloaded struct {
		Title, Text string
	} `json:"reloaded"`
	Models    []string `json:"models"`
	Token     string   `json:"token"`
	TokenPage string   `json:"tokenPage"`
	SignedOut struct {
		URL, Text string
	} `json:"signedOut"`
	AfterSignOut struct {
		URL          string `json:"url"`
		HasLoginForm bool   `json:"hasLoginForm"`
	} `json:"afterSignOut"`
	Error    string `json:"error"`
	FailedAt struct {
		URL, Text string
	} `json:"failedAt"`
}

// browserScript returns the Playwright script, once node, Chromium and
// playwright-core are there; without them the test fails, saying how to
// install them (`make deps` does), as the Dex-backed tests do.
func browserScript(t *testing.T) string {
	t.Helper()
	var missing []string
	if _, err := exec.LookPath("node"); err != nil {
		missing = append(missing, "node")
	}
	if _, err := os.Stat(chromiumPath()); err != nil {
		missing = append(missing, chromiumPath()+" (apt-get install chromium)")
	}
	if _, err := os.Stat("browser/node_modules/playwright-core/package.json"); err != nil {
		missing = append(missing, "playwright-core (npm ci --prefix e2e/browser)")
	}
	if len(missing) > 0 {
		t.Fatal("the browser sign-in test needs " + strings.Join(missing, ", ") + "; `make deps` installs them")
	}
	abs, err := filepath.Abs("browser/signin.mjs")
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

func chromiumPath() string {
	if p := os.Getenv("CHROMIUM"); p != "" {
		return p
	}
	return "/usr/bin/chromium"
}

// artifactsDir is where the test leaves screenshots: $PORTCULLIS_ARTIFACTS,
// or e2e/artifacts (ignored by git).
func artifactsDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("PORTCULLIS_ARTIFACTS")
	if dir == "" {
		dir = "artifacts"
	}
	dir, _ = filepath.Abs(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// runBrowser runs the sign-in script with env and decodes its report.
func runBrowser(t *testing.T, script string, env map[string]string) *browserReport {
	t.Helper()
	cmd := exec.Command("node", script)
	cmd.Dir = filepath.Dir(script)
	cmd.Env = os.Environ()
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("the browser did not finish in 2 minutes:\n%s\n%s", stdout.String(), stderr.String())
	}
	var r browserReport
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		t.Fatalf("browser report: %v\nstdout: %s\nstderr: %s", err, stdout.String(), stderr.String())
	}
	if r.Error != "" {
		t.Fatalf("the browser failed after steps %+v: %s\nat %s: %s\nstderr: %s", r.Steps, r.Error, r.FailedAt.URL, r.FailedAt.Text, stderr.String())
	}
	return &r
}

// ssoConfig is a gateway with the demo model, minted tokens and browser
// sign-in through d, renewing the ID token once it is 2 s old.
func ssoConfig(t *testing.T, d *dex, gatewayAddr string) (cfg, auditFile string) {
	t.Helper()
	dir := t.TempDir()
	policies, _ := filepath.Abs("../policies")
	auditFile = filepath.Join(dir, "audit.log")
	yaml := fmt.Sprintf(`
server:
  listen: ${PORTCULLIS_LISTEN}
providers:
  - name: demo
    type: demo
    word_delay: 1ms
models:
  - name: demo
    provider: demo
policy:
  dir: %s
audit:
  file: %s
identity:
  tokens:
    signing_key_file: %s
    max_lifetime: 8h
sso:
  public_url: http://%s
  session:
    keys: ["c2Vzc2lvbi1rZXktZm9yLXRoZS1lMmUtdGVzdHMtMzI="]
    # Dex's ID tokens last 10m: renew them once they are 2s old.
    refresh_before: 9m58s
  providers:
    - name: dex
      display_name: Dex
      issuer: %s
      client_id: portcullis-web
      client_secret: portcullis-web-secret
      scopes: [openid, email, profile, groups, offline_access]
`, policies, auditFile, filepath.Join(dir, "signing.pem"), gatewayAddr, d.issuer())
	cfg = filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfg, auditFile
}

// TestBrowserSignInWithDex signs a person in through a real IdP (Dex) in a
// real browser (Chromium driven by Playwright), mints a token in the
// portal, uses it with the OpenAI SDK, and signs out.
func TestBrowserSignInWithDex(t *testing.T) {
	script := browserScript(t)
	bin := dexBinary(t)
	gatewayAddr := freeAddr(t)
	d := startDex(t, bin, freeAddr(t), "-web-redirect", "http://"+gatewayAddr+"/oauth2/callback",
		"-web-signed-out", "http://"+gatewayAddr+"/oauth2/signed_out")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("dex log:\n%s", d.log.String())
		}
	})
	cfg, auditFile := ssoConfig(t, d, gatewayAddr)
	g := startGatewayAt(t, gatewayAddr, cfg)
	artifacts := artifactsDir(t)

	r := runBrowser(t, script, map[string]string{
		"GATEWAY": g.URL(), "LOGIN": "alice@example.com", "PASSWORD": "password", "ARTIFACTS": artifacts, "MINT": "1",
	})
	if len(r.Steps) < 2 || !strings.HasPrefix(r.Steps[1].URL, d.issuer()) {
		t.Fatalf("the protected page did not lead to the IdP's login form: %+v", r.Steps)
	}
	home := r.Home.Text
	if r.Home.Title != "Your access" || !strings.HasPrefix(r.Home.URL, g.URL()+"/portal/") {
		t.Fatalf("landed on %s, %q:\n%s", r.Home.URL, r.Home.Title, home)
	}
	for _, want := range []string{"alice@example.com", "engineering", "ml-team", d.issuer() + "#", "demo", "Create token"} {
		if !strings.Contains(home, want) {
			t.Errorf("the portal home page lacks %q:\n%s", want, home)
		}
	}
	shot := filepath.Join(artifacts, "portal-home-alice@example.com.png")
	if st, err := os.Stat(shot); err != nil || st.Size() < 10000 {
		t.Errorf("screenshot %s: %v", shot, err)
	}
	t.Logf("portal screenshot: %s", shot)

	// The reload renewed the sign-in with Dex's refresh token.
	if r.Reloaded.Title != "Your access" || !strings.Contains(r.Reloaded.Text, "ml-team") {
		t.Errorf("after the reload: %q", r.Reloaded.Title)
	}
	if !strings.Contains(g.stderr.String(), "sign-in renewed with the refresh token") {
		t.Errorf("no renewal in the gateway log:\n%s", g.stderr.String())
	}
	if !slices.Equal(r.Models, []string{"demo"}) {
		t.Errorf("GET /v1/models with the session cookie: %v", r.Models)
	}

	// The minted token, with the OpenAI SDK.
	if r.Token == "" || !strings.Contains(r.TokenPage, "OPENAI_BASE_URL="+g.URL()+"/v1") {
		t.Fatalf("token page:\n%s", r.TokenPage)
	}
	client := sdkClient(g, r.Token)
	resp, err := client.Chat.Completions.New(withTimeout(t), openai.ChatCompletionNewParams{
		Model: "demo", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hello from the portal's token")},
	})
	if err != nil || len(resp.Choices) != 1 || resp.Choices[0].Message.Content == "" {
		t.Fatalf("chat with the portal's token: %v", err)
	}
	rec := lastAuditRecord(t, auditFile, "/v1/chat/completions")
	id := rec["identity"].(map[string]any)
	groups, _ := id["groups"].([]any)
	if id["type"] != "user" || !strings.HasPrefix(id["subject"].(string), d.issuer()+"#") || !slices.Equal(groups, []any{"engineering", "ml-team"}) {
		t.Errorf("audited identity of the token's call: %v", id)
	}

	// Sign-out ended the session: the portal asks to sign in again.
	if !strings.Contains(r.SignedOut.Text, "signed out") {
		t.Errorf("after sign-out: %s %q", r.SignedOut.URL, r.SignedOut.Text)
	}
	if !r.AfterSignOut.HasLoginForm || !strings.HasPrefix(r.AfterSignOut.URL, d.issuer()) {
		t.Errorf("the portal after sign-out: %+v", r.AfterSignOut)
	}

	t.Run("signed in but allowed nothing", func(t *testing.T) {
		r := runBrowser(t, script, map[string]string{
			"GATEWAY": g.URL(), "LOGIN": "bob@example.com", "PASSWORD": "password", "ARTIFACTS": artifacts,
		})
		if r.Home.Title != "Signed in, but not allowed anything" || strings.Contains(r.Home.Text, "Create token") {
			t.Fatalf("%q:\n%s", r.Home.Title, r.Home.Text)
		}
	})
}

// lastAuditRecord is the newest record of the endpoint in the audit file.
func lastAuditRecord(t *testing.T, file, endpoint string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		b, _ := os.ReadFile(file)
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		for i := len(lines) - 1; i >= 0; i-- {
			var rec map[string]any
			if json.Unmarshal([]byte(lines[i]), &rec) == nil && rec["endpoint"] == endpoint {
				return rec
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no audit record of %s in %s", endpoint, file)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
