package proxy_test

import (
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"portcullis/internal/testkit"
)

// signedIn is a browser signed in to a gateway through a test IdP.
type signedIn struct {
	h       *harness
	idp     *testkit.OIDC
	browser *http.Client
	home    string // the portal home page it landed on
}

func newSignedIn(t *testing.T, claims map[string]any) *signedIn {
	t.Helper()
	return newSignedInWith(t, claims, harnessOptions{})
}

// newSignedInWith is newSignedIn with a harness of options o.
func newSignedInWith(t *testing.T, claims map[string]any, o harnessOptions) *signedIn {
	t.Helper()
	idp := testkit.NewOIDC(t)
	idp.Claims = claims
	o.ssoIssuer = idp.Issuer()
	h := newHarness(t, o)
	jar, _ := cookiejar.New(nil)
	b := &http.Client{Jar: jar}
	resp := browse(t, b, http.MethodGet, h.url+"/portal/", nil, nil)
	body := string(readAll(t, resp.Body))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/portal/" {
		t.Fatalf("sign-in ended at %s with %d:\n%s", resp.Request.URL, resp.StatusCode, body)
	}
	return &signedIn{h: h, idp: idp, browser: b, home: body}
}

// browse sends what a browser sends for a page or a form.
func browse(t *testing.T, b *http.Client, method, u string, form url.Values, header map[string]string) *http.Response {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, u, body)
	req.Header.Set("Accept", "text/html,application/xhtml+xml")
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := b.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func (s *signedIn) csrf(t *testing.T) string {
	m := csrfField.FindStringSubmatch(s.home)
	if m == nil {
		t.Fatalf("no csrf field on the home page:\n%s", s.home)
	}
	return html.UnescapeString(m[1])
}

func TestBrowserIsSentToSignIn(t *testing.T) {
	idp := testkit.NewOIDC(t)
	h := newHarness(t, harnessOptions{ssoIssuer: idp.Issuer()})
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	cases := []struct {
		path, accept, location string
		status                 int
	}{
		{"/v1/models", "text/html,application/xhtml+xml,*/*;q=0.8", "/oauth2/sign_in?rd=%2Fv1%2Fmodels", http.StatusFound},
		{"/portal/", "text/html", "/oauth2/sign_in?rd=%2Fportal%2F", http.StatusFound},
		{"/", "text/html", "/portal/", http.StatusFound},
		{"/oauth2/sign_in?rd=%2Fv1%2Fmodels", "text/html", "/oauth2/start?provider=corp&rd=%2Fv1%2Fmodels", http.StatusFound},
		{"/oauth2/sign_in?rd=%2F%2Fevil.example", "text/html", "/oauth2/start?provider=corp&rd=%2Fportal%2F", http.StatusFound},
		{"/v1/models", "application/json", "", http.StatusUnauthorized},
		{"/v1/models", "", "", http.StatusUnauthorized},
	}
	for _, c := range cases {
		req, _ := http.NewRequest(http.MethodGet, h.url+c.path, nil)
		if c.accept != "" {
			req.Header.Set("Accept", c.accept)
		}
		resp, err := noFollow.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body := readAll(t, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.status || resp.Header.Get("Location") != c.location {
			t.Errorf("GET %s (Accept %q): %d to %q, want %d to %q", c.path, c.accept, resp.StatusCode, resp.Header.Get("Location"), c.status, c.location)
		}
		if c.status == http.StatusUnauthorized {
			var e struct {
				Error struct{ Message, Type, Code string }
			}
			if json.Unmarshal(body, &e) != nil || e.Error.Code != "missing_api_key" || resp.Header.Get("WWW-Authenticate") == "" {
				t.Errorf("API call without a credential: %s", body)
			}
		}
	}
	rec := h.records.last(t, len(cases))
	if rec.Endpoint != "/v1/models" || rec.Status != http.StatusUnauthorized {
		t.Fatalf("last record %+v", rec)
	}
}

func TestPortalHomeAndToken(t *testing.T) {
	s := newSignedIn(t, map[string]any{"email": "alice@example.com", "email_verified": true, "name": "Alice Example", "groups": []string{"engineering"}})
	for _, want := range []string{"Alice Example", "alice@example.com", s.idp.Issuer() + "#user-1", "engineering", "<code>smart</code>", "<code>demo</code>", "Create token", "Sign out", "<dd>Corp SSO</dd>"} {
		if !strings.Contains(s.home, html.EscapeString(want)) && !strings.Contains(s.home, want) {
			t.Errorf("the home page lacks %q", want)
		}
	}
	resp := browse(t, s.browser, http.MethodGet, s.h.url+"/portal/", nil, nil)
	resp.Body.Close()
	if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "frame-ancestors 'none'") {
		t.Errorf("Content-Security-Policy %q", csp)
	}

	// The form without its CSRF field, or from another site, mints nothing.
	for name, c := range map[string]struct {
		form   url.Values
		header map[string]string
	}{
		"no csrf field": {url.Values{"lifetime": {"15m0s"}}, map[string]string{"Origin": s.h.url}},
		"another site":  {url.Values{"lifetime": {"15m0s"}, "csrf": {s.csrf(t)}}, map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}},
	} {
		resp := browse(t, s.browser, http.MethodPost, s.h.url+"/portal/tokens", c.form, c.header)
		body := string(readAll(t, resp.Body))
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden || strings.Contains(body, "textarea") {
			t.Errorf("%s: %d", name, resp.StatusCode)
		}
	}

	resp = browse(t, s.browser, http.MethodPost, s.h.url+"/portal/tokens", url.Values{"lifetime": {"15m0s"}, "csrf": {s.csrf(t)}},
		map[string]string{"Origin": s.h.url, "Sec-Fetch-Site": "same-origin"})
	page := string(readAll(t, resp.Body))
	resp.Body.Close()
	m := regexp.MustCompile(`<textarea[^>]*>([^<]+)</textarea>`).FindStringSubmatch(page)
	if resp.StatusCode != http.StatusOK || m == nil || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("token page: %d\n%s", resp.StatusCode, page)
	}
	token := html.UnescapeString(m[1])
	for _, want := range []string{"OPENAI_BASE_URL=" + s.h.url + "/v1", "ANTHROPIC_BASE_URL=" + s.h.url, "ANTHROPIC_AUTH_TOKEN=" + token, "Authorization: Bearer " + token} {
		if !strings.Contains(html.UnescapeString(page), want) {
			t.Errorf("token page lacks %q", want)
		}
	}
	rec := s.h.records.last(t, 1)
	if rec.Endpoint != "/portal/tokens" || rec.Identity.Subject != s.idp.Issuer()+"#user-1" || rec.Identity.Type != "user" {
		t.Errorf("mint record %+v", rec)
	}

	// The token works like any credential, and carries the person.
	call := s.h.post(token, `{"model":"demo","messages":[{"role":"user","content":"hi"}]}`)
	body := readAll(t, call.Body)
	call.Body.Close()
	if call.StatusCode != http.StatusOK {
		t.Fatalf("call with the minted token: %d %s", call.StatusCode, body)
	}
	rec = s.h.records.last(t, 1)
	if rec.Identity.Subject != s.idp.Issuer()+"#user-1" || rec.Identity.Type != "user" || !strings.HasPrefix(rec.Identity.Credential, "minted:") {
		t.Errorf("call record identity %+v", rec.Identity)
	}
}

func TestCookieAuthenticatedAPICalls(t *testing.T) {
	s := newSignedIn(t, map[string]any{"groups": []string{"engineering"}})
	csrf := s.csrf(t)
	api := func(method, path, body string, header map[string]string) (*http.Response, string) {
		req, _ := http.NewRequest(method, s.h.url+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		for k, v := range header {
			req.Header.Set(k, v)
		}
		resp, err := s.browser.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b := readAll(t, resp.Body)
		resp.Body.Close()
		return resp, string(b)
	}
	chat := `{"model":"demo","messages":[{"role":"user","content":"hi"}]}`

	if resp, body := api(http.MethodGet, "/v1/models", "", nil); resp.StatusCode != http.StatusOK || !strings.Contains(body, `"id":"demo"`) {
		t.Fatalf("GET /v1/models with the session: %d %s", resp.StatusCode, body)
	}
	for name, header := range map[string]map[string]string{
		"no proof":              nil,
		"same origin, no token": {"Origin": s.h.url, "Sec-Fetch-Site": "same-origin"},
		"token from elsewhere":  {"Origin": "https://evil.example", "X-CSRF-Token": csrf},
	} {
		resp, body := api(http.MethodPost, "/v1/chat/completions", chat, header)
		var e struct {
			Error struct{ Message, Type, Code string }
		}
		if resp.StatusCode != http.StatusForbidden || json.Unmarshal([]byte(body), &e) != nil || e.Error.Code != "csrf_failed" {
			t.Errorf("%s: %d %s", name, resp.StatusCode, body)
		}
		if rec := s.h.records.last(t, 1); rec.ErrorClass != "csrf" || rec.Status != http.StatusForbidden {
			t.Errorf("%s: record %+v", name, rec)
		}
	}
	resp, body := api(http.MethodPost, "/v1/chat/completions", chat, map[string]string{"Origin": s.h.url, "Sec-Fetch-Site": "same-origin", "X-CSRF-Token": csrf})
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "chat.completion") {
		t.Fatalf("cookie call with the CSRF proof: %d %s", resp.StatusCode, body)
	}
	if rec := s.h.records.last(t, 1); rec.Identity.Credential != "session:corp" || rec.Status != http.StatusOK {
		t.Errorf("record %+v", rec.Identity)
	}
	// A bearer credential needs no CSRF proof, and wins over a broken cookie.
	req, _ := http.NewRequest(http.MethodPost, s.h.url+"/v1/chat/completions", strings.NewReader(chat))
	req.Header.Set("Authorization", "Bearer "+engKey)
	req.Header.Set("Cookie", "portcullis_session=1.garbage")
	bearer, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	bearer.Body.Close()
	if bearer.StatusCode != http.StatusOK {
		t.Fatalf("bearer call beside a broken cookie: %d", bearer.StatusCode)
	}
}

func TestSignedInButNotAllowed(t *testing.T) {
	s := newSignedIn(t, map[string]any{"groups": []string{"visitors"}})
	if !strings.Contains(s.home, "Signed in, but not allowed anything") || !strings.Contains(s.home, "visitors") || strings.Contains(s.home, "Create token") {
		t.Fatalf("home page of a person allowed nothing:\n%s", s.home)
	}
	resp := browse(t, s.browser, http.MethodPost, s.h.url+"/portal/tokens", url.Values{"lifetime": {"15m0s"}, "csrf": {s.csrf(t)}}, map[string]string{"Origin": s.h.url})
	body := string(readAll(t, resp.Body))
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || strings.Contains(body, "<textarea") {
		t.Fatalf("minted for a person allowed nothing: %d", resp.StatusCode)
	}
}

func TestPortalSignOut(t *testing.T) {
	s := newSignedIn(t, map[string]any{"groups": []string{"engineering"}})
	s.browser.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp := browse(t, s.browser, http.MethodPost, s.h.url+"/oauth2/sign_out", url.Values{"csrf": {s.csrf(t)}}, map[string]string{"Origin": s.h.url})
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusSeeOther || loc.Path != "/logout" || loc.Query().Get("post_logout_redirect_uri") != s.h.url+"/oauth2/signed_out" {
		t.Fatalf("sign-out: %d to %s", resp.StatusCode, loc)
	}
	resp = browse(t, s.browser, http.MethodGet, s.h.url+"/portal/", nil, nil)
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), "/oauth2/sign_in") {
		t.Fatalf("after sign-out the portal answered %d to %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp = browse(t, s.browser, http.MethodGet, s.h.url+"/oauth2/signed_out", nil, nil)
	body := string(readAll(t, resp.Body))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "You are signed out") {
		t.Fatalf("signed-out page: %d", resp.StatusCode)
	}
}
