package proxy_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"portcullis/audit"
	"portcullis/authn"
	"portcullis/authz"
	"portcullis/config"
	"portcullis/internal/testkit"
	"portcullis/proxy"
	"portcullis/usage"
)

// Credentials used across the proxy tests.
const (
	upstreamKey = "sk-upstream-SECRET-4f8a1c9e77"
	engKey      = "pcx_test_engineering_key"
	demoKey     = "pcx_test_demo_group_key"
)

// harness is a gateway in front of a fake upstream, with its audit records
// and application log captured.
type harness struct {
	t        testing.TB
	srv      *proxy.Server
	url      string
	ts       *httptest.Server
	upstream *testkit.Upstream
	records  *recorder
	logs     *syncBuffer
	policy   *authz.Engine
}

type harnessOptions struct {
	// policyDir replaces the repo's policies/ folder.
	policyDir string
	// providers and models are appended to those sections of the configuration.
	providers, models string
	// audit replaces the in-memory recorder.
	audit proxy.Auditor
	// grace is server.shutdown_grace. Zero value: 30s.
	grace string
	// observer is the server's Observer.
	observer proxy.Observer
	// trustedProxies is server.trusted_proxies, as a YAML list.
	trustedProxies string
	// ssoIssuer, when set, turns on browser sign-in with this OIDC
	// provider (client portcullis, secret test-secret) and token minting.
	ssoIssuer string
	// tracer traces the calls. Zero value: tracing off.
	tracer trace.Tracer
	// contentMaxBytes is audit.content_max_bytes. Zero value: the default.
	contentMaxBytes int
	// meter enforces budgets and rate limits. Zero value: they are only audited.
	meter *usage.Meter
}

func newHarness(t testing.TB, o harnessOptions) *harness {
	t.Helper()
	up := testkit.NewUpstream(t)
	if o.policyDir == "" {
		abs, err := filepath.Abs("../policies")
		if err != nil {
			t.Fatal(err)
		}
		o.policyDir = abs
	}
	if o.grace == "" {
		o.grace = "30s"
	}
	if o.trustedProxies == "" {
		o.trustedProxies = "[]"
	}
	dir := t.TempDir()
	ts := httptest.NewUnstartedServer(nil)
	yaml := ssoYAML(o.ssoIssuer, "http://"+ts.Listener.Addr().String(), dir) + fmt.Sprintf(`
server:
  max_body_bytes: 4096
  shutdown_grace: %s
  trusted_proxies: %s
providers:
  - name: upstream
    type: openai
    base_url: %s/v1
    api_key: %s
    headers:
      OpenAI-Organization: org-test
  - name: demo
    type: demo
    word_delay: 1ms%s
models:
  - name: smart
    provider: upstream
    upstream_model: gpt-4o-mini
  - name: demo
    provider: demo
  - name: demo-hang
    provider: demo%s
auth:
  api_keys:
    - name: eng
      hash: %s
      subject: alice
      groups: [engineering]
    - name: demo
      hash: %s
      subject: bob
      groups: [demo]
policy:
  dir: %s
audit:
  file: %s
  content_max_bytes: %d
`, o.grace, o.trustedProxies, up.URL, upstreamKey, o.providers, o.models, authn.HashKey(engKey), authn.HashKey(demoKey), o.policyDir, filepath.Join(dir, "audit.log"), o.contentMaxBytes)
	cfg, err := config.Parse(filepath.Join(dir, "config.yaml"), []byte(yaml), os.LookupEnv)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := authn.NewAPIKeys(cfg.Auth.APIKeys)
	if err != nil {
		t.Fatal(err)
	}
	chain := authn.Chain{keys}
	var minter *authn.Minter
	var sso *authn.SSO
	if o.ssoIssuer != "" {
		if minter, err = authn.NewMinter(cfg.Identity.Tokens); err != nil {
			t.Fatal(err)
		}
		jwts, err := authn.NewJWTs(context.Background(), nil, authn.JWTOptions{Minted: minter})
		if err != nil {
			t.Fatal(err)
		}
		if sso, err = authn.NewSSO(cfg.SSO, authn.SSOOptions{}); err != nil {
			t.Fatal(err)
		}
		chain = append(chain, jwts, sso)
	}
	policy, err := authz.Load(context.Background(), cfg.Policy.Dir)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	var auditor proxy.Auditor = rec
	if o.audit != nil {
		auditor = o.audit
	}
	logs := &syncBuffer{}
	logger := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(logs), zapcore.DebugLevel))
	srv, err := proxy.New(proxy.Options{
		Config: cfg, Logger: logger, Authenticator: chain, Policy: policy, Audit: auditor, Version: "test", Observer: o.observer,
		Minter: minter, SSO: sso,
		Tracer: o.tracer,
		Meter:  o.meter,
	})
	if err != nil {
		t.Fatal(err)
	}
	ts.Config.Handler = srv.Handler()
	ts.Start()
	t.Cleanup(ts.Close)
	return &harness{t: t, srv: srv, url: ts.URL, ts: ts, upstream: up, records: rec, logs: logs, policy: policy}
}

// ssoYAML is the sso and identity.tokens sections for a gateway at
// publicURL signing in with issuer; nothing when issuer is empty.
func ssoYAML(issuer, publicURL, dir string) string {
	if issuer == "" {
		return ""
	}
	return fmt.Sprintf(`
sso:
  public_url: %s
  session:
    keys: [MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=]
  providers:
    - name: corp
      display_name: Corp SSO
      issuer: %s
      client_id: portcullis
      client_secret: test-secret
identity:
  tokens:
    signing_key_file: %s
`, publicURL, issuer, filepath.Join(dir, "signing.pem"))
}

// post sends a chat completions request with the given key and body.
func (h *harness) post(key, body string) *http.Response {
	h.t.Helper()
	req, err := http.NewRequest(http.MethodPost, h.url+"/v1/chat/completions", strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	return resp
}

func readAll(t testing.TB, r io.Reader) []byte {
	t.Helper()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// recorder is an in-memory audit sink.
type recorder struct {
	mu      sync.Mutex
	records []audit.Record
}

func (r *recorder) Write(rec *audit.Record) {
	r.mu.Lock()
	r.records = append(r.records, *rec)
	r.mu.Unlock()
}

// last waits until n records exist and returns the newest. Records are
// written when the handler returns, which can be just after the client
// has read the whole response.
func (r *recorder) last(t *testing.T, n int) audit.Record {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r.mu.Lock()
		if len(r.records) >= n {
			rec := r.records[len(r.records)-1]
			r.mu.Unlock()
			return rec
		}
		r.mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for audit record %d", n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) Sync() error { return nil }

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
