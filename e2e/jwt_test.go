package e2e

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/openai/openai-go/v3"

	"portcullis/authn"
)

// testPolicy allows every call, except one outside the credential's model
// scope (input.identity.claims.models), so the tests see that the policy
// gets the claims.
const testPolicy = `package portcullis

import rego.v1

decision := {"allow": false, "reasons": ["the credential's model scope excludes this model"]} if {
	scope := input.identity.claims.models
	not input.request.model in scope
} else := {"allow": true, "reasons": [sprintf("%s %s", [input.identity.type, input.identity.subject])]}

models := ["demo", "demo-2"]
`

// identitySetup is what a JWT test's gateway config needs.
type identitySetup struct {
	dir       string
	auditFile string
	issuers   string // YAML list items under identity.issuers
	revoked   string // path of the minted tokens' revocation list
	keysFile  string
}

// writeIdentityConfig writes a gateway config with the demo provider, the
// test policy, two API keys (one expired), minted tokens and the issuers.
func writeIdentityConfig(t *testing.T, s *identitySetup) string {
	t.Helper()
	if s.dir == "" {
		s.dir = t.TempDir()
	}
	pol := filepath.Join(s.dir, "policies")
	os.MkdirAll(pol, 0o755)
	if err := os.WriteFile(filepath.Join(pol, "p.rego"), []byte(testPolicy), 0o644); err != nil {
		t.Fatal(err)
	}
	s.auditFile = filepath.Join(s.dir, "audit.log")
	s.revoked = filepath.Join(s.dir, "revoked.txt")
	s.keysFile = filepath.Join(s.dir, "keys.yaml")
	cfg := fmt.Sprintf(`server:
  listen: ${PORTCULLIS_LISTEN:-127.0.0.1:0}
providers:
  - name: demo
    type: demo
    word_delay: 1ms
models:
  - name: demo
    provider: demo
  - name: demo-2
    provider: demo
auth:
  api_keys:
    - name: live-key
      hash: %s
      subject: live
      groups: [eng]
    - name: old-key
      hash: %s
      subject: old
      expires: "2020-01-01T00:00:00Z"
identity:
  api_keys_file: %s
  tokens:
    signing_key_file: %s
    revoked_file: %s
    max_lifetime: 1h
  issuers:
%s
policy:
  dir: %s
audit:
  file: %s
`, authn.HashKey(liveKey), authn.HashKey(oldKey), s.keysFile, filepath.Join(s.dir, "signing.pem"), s.revoked, s.issuers, pol, s.auditFile)
	path := filepath.Join(s.dir, "config.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

const (
	liveKey = "pcx_e2e_live_key_000000000000000000000000000"
	oldKey  = "pcx_e2e_expired_key_0000000000000000000000000"
)

// call posts a chat completion with a bearer credential.
func call(t *testing.T, g *gateway, credential, model string) (*http.Response, string) {
	t.Helper()
	body := `{"model":"` + model + `","messages":[{"role":"user","content":"hi"}]}`
	req, _ := http.NewRequest(http.MethodPost, g.URL()+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+credential)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

// auditRecord waits for the audit record of a request id.
func auditRecord(t *testing.T, file, requestID string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		f, err := os.Open(file)
		if err == nil {
			sc := bufio.NewScanner(f)
			sc.Buffer(make([]byte, 1<<20), 1<<20)
			for sc.Scan() {
				if !bytes.Contains(sc.Bytes(), []byte(requestID)) {
					continue
				}
				var rec map[string]any
				if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
					t.Fatal(err)
				}
				f.Close()
				return rec
			}
			f.Close()
		}
		if time.Now().After(deadline) {
			t.Fatalf("no audit record for %s in %s", requestID, file)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// mint asks the gateway for a minted token with a credential.
func mint(t *testing.T, g *gateway, credential, body string) (token, id string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, g.URL()+"/v1/tokens", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+credential)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		AccessToken string `json:"access_token"`
		ID          string `json:"id"`
	}
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || json.Unmarshal(raw, &out) != nil || out.AccessToken == "" {
		t.Fatalf("POST /v1/tokens: %d %s", resp.StatusCode, raw)
	}
	return out.AccessToken, out.ID
}

// The refusal matrix, end to end through the real binary: each bad
// credential gets a 401 whose WWW-Authenticate says why, and an audit
// record of class authentication that says the same.
func TestJWTRefusalMatrix(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	// The issuer's keys as a JWK Set file, as `kubectl get --raw /openid/v1/jwks` prints them.
	pub := filepath.Join(dir, "issuer-jwks.json")
	jwks := fmt.Sprintf(`{"keys":[{"kty":"RSA","kid":"k1","use":"sig","alg":"RS256","n":"%s","e":"AQAB"}]}`,
		base64.RawURLEncoding.EncodeToString(key.N.Bytes()))
	os.WriteFile(pub, []byte(jwks), 0o600)
	const iss, replayIss = "https://sa.example.test", "https://once.example.test"
	s := &identitySetup{dir: dir, issuers: fmt.Sprintf(`    - name: static
      issuer: %s
      audiences: [portcullis]
      keys_file: %s
    - name: one-time
      issuer: %s
      audiences: [portcullis]
      keys_file: %s
      replay_protection: true`, iss, pub, replayIss, pub)}
	cfg := writeIdentityConfig(t, s)
	g := startGateway(t, cfg)

	now := time.Now()
	claims := func(edit func(jwt.MapClaims)) jwt.MapClaims {
		c := jwt.MapClaims{"iss": iss, "aud": "portcullis", "sub": "build-bot", "exp": now.Add(10 * time.Minute).Unix(),
			"iat": now.Unix(), "nbf": now.Unix(), "groups": []string{"agents"}}
		if edit != nil {
			edit(c)
		}
		return c
	}
	signRS := func(c jwt.MapClaims, kid string) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodRS256, c)
		tok.Header["kid"] = kid
		return mustString(tok.SignedString(key))
	}
	good := signRS(claims(nil), "k1")

	// The good token works, through the official SDK too.
	if resp, body := call(t, g, good, "demo"); resp.StatusCode != http.StatusOK {
		t.Fatalf("good token: %d %s", resp.StatusCode, body)
	}
	goodClient := sdkClient(g, good)
	if _, err := goodClient.Chat.Completions.New(withTimeout(t), openai.ChatCompletionNewParams{
		Model: "demo", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hello")},
	}); err != nil {
		t.Fatalf("OpenAI SDK with a service-account token: %v", err)
	}

	parts := strings.Split(good, ".")
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: mustBytes(x509.MarshalPKIXPublicKey(&key.PublicKey))})
	hs := jwt.NewWithClaims(jwt.SigningMethodHS256, claims(nil))
	hs.Header["kid"] = "k1"
	tamperedSig := []byte(parts[2])
	tamperedSig[5] = map[bool]byte{true: 'B', false: 'A'}[tamperedSig[5] == 'A']
	replayTok := signRS(claims(func(c jwt.MapClaims) { c["iss"] = replayIss; c["jti"] = "one-use" }), "k1")
	if resp, body := call(t, g, replayTok, "demo"); resp.StatusCode != http.StatusOK {
		t.Fatalf("first use of a one-time token: %d %s", resp.StatusCode, body)
	}
	minted, mintedID := mint(t, g, liveKey, `{"lifetime":"10m"}`)
	if resp, body := call(t, g, minted, "demo"); resp.StatusCode != http.StatusOK {
		t.Fatalf("minted token before revocation: %d %s", resp.StatusCode, body)
	}
	mintedClient := sdkClient(g, minted)
	if _, err := mintedClient.Chat.Completions.New(withTimeout(t), openai.ChatCompletionNewParams{
		Model: "demo", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hello")},
	}); err != nil {
		t.Fatalf("OpenAI SDK with a minted token: %v", err)
	}
	os.WriteFile(s.revoked, []byte(mintedID+"\n"), 0o600)

	tests := []struct {
		name, credential, reason string
	}{
		{"alg none", b64json(`{"alg":"none","typ":"JWT"}`) + "." + parts[1] + ".", "algorithm is not accepted"},
		{"HS256 signed with the issuer's public key", mustString(hs.SignedString(pubPEM)), "algorithm is not accepted"},
		{"expired", signRS(claims(func(c jwt.MapClaims) { c["exp"] = now.Add(-time.Hour).Unix() }), "k1"), "the token expired at"},
		{"nbf in the future", signRS(claims(func(c jwt.MapClaims) { c["nbf"] = now.Add(time.Hour).Unix() }), "k1"), "not valid yet"},
		{"wrong aud", signRS(claims(func(c jwt.MapClaims) { c["aud"] = "billing-service" }), "k1"), "audience is not one this gateway accepts"},
		{"missing aud", signRS(claims(func(c jwt.MapClaims) { delete(c, "aud") }), "k1"), "no aud claim"},
		{"wrong iss", signRS(claims(func(c jwt.MapClaims) { c["iss"] = "https://evil.example" }), "k1"), "issuer 'https://evil.example' is not trusted"},
		{"unknown kid", signRS(claims(nil), "k-unknown"), "no key of issuer static matches the token's kid 'k-unknown'"},
		{"tampered payload", parts[0] + "." + b64json(`{"iss":"`+iss+`","aud":"portcullis","sub":"admin","exp":9999999999}`) + "." + parts[2], "signature is invalid"},
		{"tampered signature", parts[0] + "." + parts[1] + "." + string(tamperedSig), "signature is invalid"},
		{"token over 16 KiB", signRS(claims(func(c jwt.MapClaims) { c["pad"] = strings.Repeat("x", 17<<10) }), "k1"), "the limit is 16384"},
		{"replayed jti", replayTok, "already used"},
		{"revoked minted token", minted, "revoked"},
		{"expired API key", oldKey, "the API key 'old-key' expired at 2020-01-01T00:00:00Z"},
		{"unknown API key", "pcx_nobody", "the API key is unknown or revoked"},
	}
	time.Sleep(2500 * time.Millisecond) // the revocation list is re-read every 2s
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := call(t, g, tt.credential, "demo")
			if resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("status %d, body %s; want 401", resp.StatusCode, body)
			}
			wa := resp.Header.Get("WWW-Authenticate")
			prefix := `Bearer realm="portcullis", error="invalid_token", error_description="`
			if !strings.HasPrefix(wa, prefix) || !strings.Contains(wa, tt.reason) || !strings.HasSuffix(wa, `"`) {
				t.Errorf("WWW-Authenticate = %s; want %s...%s...", wa, prefix, tt.reason)
			}
			if len(tt.credential) > 20 && strings.Contains(wa+body, tt.credential[len(tt.credential)-20:]) {
				t.Error("the response echoes the credential")
			}
			rec := auditRecord(t, s.auditFile, resp.Header.Get("X-Request-Id"))
			if rec["status"] != float64(401) || rec["error_class"] != "authentication" || !strings.Contains(rec["error"].(string), tt.reason) {
				t.Errorf("audit record: status %v, class %v, error %q", rec["status"], rec["error_class"], rec["error"])
			}
		})
	}
	raw, _ := os.ReadFile(s.auditFile)
	if bytes.Contains(raw, []byte(parts[2])) || strings.Contains(g.stderr.String(), parts[2]) {
		t.Error("a token's signature appears in the audit or application log")
	}
}

// The keys file: a key generated into it works without a restart, and is
// refused within seconds of `keys revoke`.
func TestKeysFileLifecycle(t *testing.T) {
	s := &identitySetup{issuers: "    []"}
	cfg := writeIdentityConfig(t, s)
	g := startGateway(t, cfg)
	out, err := exec.Command(binary, "keys", "generate", "--config", cfg, "--subject", "agent-7", "--name", "agent-7",
		"--ttl", "24h", "--model", "demo", "--description", "nightly evals").CombinedOutput()
	if err != nil {
		t.Fatalf("keys generate: %v\n%s", err, out)
	}
	var key string
	for line := range strings.Lines(string(out)) {
		if strings.HasPrefix(line, authn.KeyPrefix) {
			key = strings.TrimSpace(line)
		}
	}
	waitStatus(t, g, key, "demo", http.StatusOK)
	// The key's model scope reaches the policy.
	if resp, body := call(t, g, key, "demo-2"); resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "model scope") {
		t.Errorf("model outside the key's scope: %d %s", resp.StatusCode, body)
	}
	list, err := exec.Command(binary, "keys", "list", "--file", s.keysFile).CombinedOutput()
	if err != nil || !strings.Contains(string(list), "agent-7") || !strings.Contains(string(list), "nightly evals") || strings.Contains(string(list), key) {
		t.Errorf("keys list: %v\n%s", err, list)
	}
	if out, err := exec.Command(binary, "keys", "revoke", "--file", s.keysFile, "--name", "agent-7").CombinedOutput(); err != nil {
		t.Fatalf("keys revoke: %v\n%s", err, out)
	}
	waitStatus(t, g, key, "demo", http.StatusUnauthorized)
	resp, _ := call(t, g, key, "demo")
	if wa := resp.Header.Get("WWW-Authenticate"); !strings.Contains(wa, "was revoked") {
		t.Errorf("WWW-Authenticate = %s", wa)
	}
}

// waitStatus retries a call until it answers want, for changes the
// gateway picks up from files.
func waitStatus(t *testing.T, g *gateway, credential, model string, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, body := call(t, g, credential, model)
		if resp.StatusCode == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("status %d (%s); want %d", resp.StatusCode, body, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func b64json(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

func mustBytes(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

func mustString(s string, err error) string {
	if err != nil {
		panic(err)
	}
	return s
}

// --- Dex, the real OpenID Connect provider ---

var (
	idpOnce  sync.Once
	idpBin   string
	idpErr   error
	idpBuild time.Duration
)

// dexBinary builds e2e/idp (Dex as a library) once. Dex is built from the
// Go module proxy like everything else, so a failed build fails the test:
// a test that skips proves nothing.
func dexBinary(t *testing.T) string {
	t.Helper()
	idpOnce.Do(func() {
		dir, err := os.MkdirTemp("", "portcullis-idp")
		if err != nil {
			idpErr = err
			return
		}
		idpBin = filepath.Join(dir, "idp")
		start := time.Now()
		cmd := exec.Command("go", "build", "-o", idpBin, ".")
		cmd.Dir = "idp"
		out, err := cmd.CombinedOutput()
		idpBuild = time.Since(start)
		if err != nil {
			idpErr = fmt.Errorf("go build ./e2e/idp: %v\n%s", err, out)
		}
	})
	if idpErr != nil {
		t.Fatalf("Dex (e2e/idp) could not be built, so there is no IdP to test against: %v", idpErr)
	}
	t.Logf("Dex built in %s", idpBuild.Round(time.Millisecond))
	return idpBin
}

// dex is a running Dex.
type dex struct {
	addr string
	cmd  *exec.Cmd
	done chan error
	log  *lockedBuffer
}

func (d *dex) issuer() string { return "http://" + d.addr + "/dex" }

// startDex runs Dex on addr, with any further flags of e2e/idp, and waits
// for its discovery document.
func startDex(t *testing.T, bin, addr string, flags ...string) *dex {
	t.Helper()
	d := &dex{addr: addr, done: make(chan error, 1), log: &lockedBuffer{}}
	d.cmd = exec.Command(bin, append([]string{"-addr", addr}, flags...)...)
	d.cmd.Stdout, d.cmd.Stderr = d.log, d.log
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.done <- d.cmd.Wait() }()
	t.Cleanup(func() { d.stop() })
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(d.issuer() + "/.well-known/openid-configuration")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return d
			}
		}
		select {
		case err := <-d.done:
			d.done <- err
			t.Fatalf("dex exited during start-up (%v):\n%s", err, d.log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("dex not ready:\n%s", d.log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop ends Dex and waits for it; stopping twice is harmless.
func (d *dex) stop() {
	if d.cmd.ProcessState != nil {
		return
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-d.done:
		d.done <- err
	case <-time.After(10 * time.Second):
		_ = d.cmd.Process.Kill()
	}
}

// clientToken gets a client_credentials access token from Dex.
func (d *dex) clientToken(t *testing.T, client, secret string) string {
	t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}, "scope": {"openid groups profile"}}
	req, _ := http.NewRequest(http.MethodPost, d.issuer()+"/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(client, secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		AccessToken string `json:"access_token"`
	}
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || json.Unmarshal(raw, &out) != nil || out.AccessToken == "" {
		t.Fatalf("dex token: %d %s", resp.StatusCode, raw)
	}
	return out.AccessToken
}

func tokenHeader(t *testing.T, token string) map[string]any {
	h, _, _ := strings.Cut(token, ".")
	raw, err := base64.RawURLEncoding.DecodeString(h)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	json.Unmarshal(raw, &m)
	return m
}

func tokenClaims(t *testing.T, token string) map[string]any {
	parts := strings.Split(token, ".")
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	json.Unmarshal(raw, &m)
	return m
}

func dexIssuerYAML(d *dex, audience string) string {
	return fmt.Sprintf(`    - name: dex
      issuer: %s
      audiences: [%s]
      refresh_interval: 1s`, d.issuer(), audience)
}

// Against real Dex: a client-credentials token is accepted and mapped to
// the right identity and groups, by raw HTTP and by the OpenAI SDK; a token
// for another client and, after a config change, this client's own are
// refused for their audience; keys Dex rotates are picked up without a
// restart; while Dex is down, tokens whose keys are cached keep working.
func TestDexClientCredentials(t *testing.T) {
	bin := dexBinary(t)
	d := startDex(t, bin, freeAddr(t))
	s := &identitySetup{issuers: dexIssuerYAML(d, "ci-agent")}
	cfg := writeIdentityConfig(t, s)
	g := startGateway(t, cfg)

	tok := d.clientToken(t, "ci-agent", "ci-agent-secret")
	sub := tokenClaims(t, tok)["sub"].(string)
	resp, body := call(t, g, tok, "demo")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("dex token: %d %s", resp.StatusCode, body)
	}
	rec := auditRecord(t, s.auditFile, resp.Header.Get("X-Request-Id"))
	id := rec["identity"].(map[string]any)
	groups, _ := id["groups"].([]any)
	if id["type"] != "service" || id["subject"] != d.issuer()+"#"+sub || id["credential"] != "jwt:dex" ||
		!slices.Equal(groups, []any{"agents", "ml-team"}) {
		t.Errorf("audited identity = %v", id)
	}
	// The policy saw the same identity (its reason names it).
	if reasons := rec["decision"].(map[string]any)["reasons"].([]any); len(reasons) != 1 || reasons[0] != "service "+d.issuer()+"#"+sub {
		t.Errorf("policy reasons = %v", reasons)
	}

	t.Run("OpenAI SDK with the Dex token", func(t *testing.T) {
		client := sdkClient(g, d.clientToken(t, "ci-agent", "ci-agent-secret"))
		r, err := client.Chat.Completions.New(withTimeout(t),
			openai.ChatCompletionNewParams{Model: "demo", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hello from CI")}})
		if err != nil || len(r.Choices) != 1 {
			t.Fatalf("SDK call: %v", err)
		}
	})

	t.Run("OpenAI SDK with a token minted from the Dex token", func(t *testing.T) {
		minted, _ := mint(t, g, tok, `{"lifetime":"5m","models":["demo"]}`)
		client := sdkClient(g, minted)
		if _, err := client.Chat.Completions.New(withTimeout(t), openai.ChatCompletionNewParams{
			Model: "demo", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")}}); err != nil {
			t.Fatalf("SDK call with minted token: %v", err)
		}
		_, err := client.Chat.Completions.New(withTimeout(t), openai.ChatCompletionNewParams{
			Model: "demo-2", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")}})
		var apiErr *openai.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusForbidden {
			t.Errorf("minted token outside its model scope: %v", err)
		}
	})

	t.Run("token for another client is refused", func(t *testing.T) {
		other := d.clientToken(t, "other-service", "other-service-secret")
		resp, _ := call(t, g, other, "demo")
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("WWW-Authenticate"), "audience") {
			t.Errorf("other client's token: %d %s", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
	})

	t.Run("refused once the audience is changed in config", func(t *testing.T) {
		s2 := &identitySetup{issuers: dexIssuerYAML(d, "some-other-audience")}
		g2 := startGateway(t, writeIdentityConfig(t, s2))
		resp, body := call(t, g2, tok, "demo")
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("WWW-Authenticate"), "audience is not one this gateway accepts") {
			t.Errorf("after the audience change: %d %s %s", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), body)
		}
		rec := auditRecord(t, s2.auditFile, resp.Header.Get("X-Request-Id"))
		if rec["error_class"] != "authentication" {
			t.Errorf("audit record = %v", rec)
		}
	})

	// Outage: a token the gateway has not seen, signed by a key it has
	// cached, is verified while Dex is down.
	unseen := d.clientToken(t, "ci-agent", "ci-agent-secret")
	oldKid := tokenHeader(t, unseen)["kid"]
	d.stop()
	t.Run("IdP outage: cached keys keep working", func(t *testing.T) {
		if resp, body := call(t, g, unseen, "demo"); resp.StatusCode != http.StatusOK {
			t.Fatalf("during the outage: %d %s", resp.StatusCode, body)
		}
		// A token with an unknown kid makes the gateway try Dex, which
		// fails; the failure is logged and counted, and the call refused.
		time.Sleep(1100 * time.Millisecond)
		forged := b64json(`{"alg":"RS256","kid":"not-at-dex","typ":"JWT"}`) + "." + strings.Split(unseen, ".")[1] + "." + strings.Split(unseen, ".")[2]
		resp, _ := call(t, g, forged, "demo")
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("unknown kid during the outage: %d", resp.StatusCode)
		}
		deadline := time.Now().Add(5 * time.Second)
		for !strings.Contains(g.stderr.String(), "issuer keys could not be fetched; cached keys stay in use") {
			if time.Now().After(deadline) {
				t.Fatalf("the failed key fetch was not logged:\n%s", g.stderr.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
		if strings.Contains(g.stderr.String(), strings.Split(unseen, ".")[2]) {
			t.Error("the gateway log holds a token")
		}
	})

	// Rotation: Dex restarted on the same address has a new signing key.
	t.Run("key rotation at the IdP is picked up without a restart", func(t *testing.T) {
		d2 := startDex(t, bin, d.addr)
		rotated := d2.clientToken(t, "ci-agent", "ci-agent-secret")
		if kid := tokenHeader(t, rotated)["kid"]; kid == oldKid {
			t.Fatalf("Dex did not rotate its key (kid %v)", kid)
		}
		time.Sleep(1100 * time.Millisecond) // past the refresh interval
		if resp, body := call(t, g, rotated, "demo"); resp.StatusCode != http.StatusOK {
			t.Fatalf("token signed with the rotated key: %d %s", resp.StatusCode, body)
		}
	})
}
