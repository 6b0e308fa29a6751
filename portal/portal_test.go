package portal

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"portcullis/authn"
	"portcullis/config"
)

// What an IdP or a URL puts in a message reaches the page escaped.
func TestErrorPageEscapes(t *testing.T) {
	p := New(Options{PublicURL: "https://gw.example", FormTargets: []string{"https://idp.example"}})
	w := httptest.NewRecorder()
	p.RenderError(w, httptest.NewRequest(http.MethodGet, "/oauth2/callback", nil), http.StatusForbidden,
		`Dex did not sign you in (access_denied). <script>alert(1)</script><img src=x onerror=alert(2)>`)
	body := w.Body.String()
	if w.Code != http.StatusForbidden || strings.Contains(body, "<script>alert") || strings.Contains(body, "<img src=x") || !strings.Contains(body, "&lt;script&gt;") {
		t.Fatalf("%d:\n%s", w.Code, body)
	}
	csp := w.Header().Get("Content-Security-Policy")
	if !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "form-action 'self' https://idp.example") || strings.Contains(csp, "script-src") {
		t.Errorf("CSP %q", csp)
	}
	if w.Header().Get("Cache-Control") != "no-store" || w.Header().Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("headers %v", w.Header())
	}
}

type maxLife time.Duration

func (m maxLife) Mint(*authn.Identity, time.Duration, []string, time.Time) (*authn.Minted, error) {
	return nil, nil
}
func (m maxLife) MaxLifetime() time.Duration { return time.Duration(m) }

// The token form offers the usual lifetimes up to the longest the gateway
// mints, and that longest one.
func TestLifetimes(t *testing.T) {
	for max, want := range map[time.Duration][]string{
		10 * time.Minute: {"10 minutes"},
		time.Hour:        {"15 minutes", "1 hour"},
		8 * time.Hour:    {"15 minutes", "1 hour", "8 hours"},
		12 * time.Hour:   {"15 minutes", "1 hour", "8 hours", "12 hours"},
		24 * time.Hour:   {"15 minutes", "1 hour", "8 hours", "24 hours"},
	} {
		p := New(Options{Minter: maxLife(max)})
		var got []string
		for _, c := range p.lifetimes() {
			got = append(got, c.Label)
		}
		if !slices.Equal(got, want) || !p.lifetimes()[0].Selected {
			t.Errorf("max %s: %v, want %v", max, got, want)
		}
	}
}

// With several IdPs the sign-in page lists each, keeping where to return.
func TestSignInPageListsTheProviders(t *testing.T) {
	yaml := "audit:\n  stdout: true\nsso:\n  public_url: https://gw.example\n  session:\n    keys: [MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=]\n  providers:\n" +
		"    - name: okta\n      display_name: Okta\n      issuer: https://corp.okta.example\n      client_id: gw\n" +
		"    - name: entra\n      display_name: Microsoft\n      kind: entra\n      issuer: https://login.example/t/v2.0\n      client_id: gw\n"
	cfg, err := config.Parse("config.yaml", []byte(yaml), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	sso, err := authn.NewSSO(cfg.SSO, authn.SSOOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p := New(Options{SSO: sso, PublicURL: cfg.SSO.PublicURL})
	w := httptest.NewRecorder()
	p.Handler().ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/oauth2/sign_in?rd=%2Fv1%2Fmodels", nil))
	body := w.Body.String()
	okta := strings.Index(body, `href="/oauth2/start?provider=okta&amp;rd=%2Fv1%2Fmodels">Sign in with Okta`)
	entra := strings.Index(body, `href="/oauth2/start?provider=entra&amp;rd=%2Fv1%2Fmodels">Sign in with Microsoft`)
	if w.Code != http.StatusOK || okta < 0 || entra < okta {
		t.Fatalf("%d:\n%s", w.Code, body)
	}
}
