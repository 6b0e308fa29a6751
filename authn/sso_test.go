package authn_test

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"portcullis/authn"
	"portcullis/config"
	"portcullis/internal/testkit"
)

// clock is a settable time shared by the gateway and the test IdP.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// ssoRig is a gateway front (the flow's endpoints and a page that shows
// the caller's identity) in front of a test IdP.
type ssoRig struct {
	t      *testing.T
	idp    *testkit.OIDC
	sso    *authn.SSO
	srv    *httptest.Server
	clock  *clock
	cfg    config.SSO
	events chan authn.SSOEvent
}

func sessionKey(t testing.TB) config.Secret {
	b := make([]byte, 32)
	rand.Read(b)
	return config.Secret(base64.StdEncoding.EncodeToString(b))
}

// newSSORig starts the rig; edit changes the configuration before use.
func newSSORig(t *testing.T, edit func(*config.SSOProvider, *config.Session)) *ssoRig {
	t.Helper()
	r := &ssoRig{t: t, idp: testkit.NewOIDC(t), clock: &clock{t: time.Now()}, events: make(chan authn.SSOEvent, 100)}
	r.idp.Now = r.clock.Now
	r.srv = httptest.NewUnstartedServer(nil)
	r.srv.Start()
	t.Cleanup(r.srv.Close)
	yaml := "audit:\n  stdout: true\nsso:\n  public_url: " + r.srv.URL + "\n  session:\n    keys: [" + string(sessionKey(t)) + "]\n  providers:\n" +
		"    - name: test\n      issuer: " + r.idp.Issuer() + "\n      client_id: portcullis\n      client_secret: test-secret\n"
	cfg, err := config.Parse("portcullis.yaml", []byte(yaml), func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(&cfg.SSO.Providers[0], &cfg.SSO.Session)
	}
	r.cfg = cfg.SSO
	r.build()
	return r
}

// build (re)creates the gateway side from r.cfg, as a restart would.
func (r *ssoRig) build() {
	sso, err := authn.NewSSO(r.cfg, authn.SSOOptions{
		Now: r.clock.Now,
		OnEvent: func(e authn.SSOEvent) {
			select {
			case r.events <- e:
			default:
			}
		},
	})
	if err != nil {
		r.t.Fatal(err)
	}
	r.sso = sso
	mux := http.NewServeMux()
	mux.HandleFunc(authn.StartPath, sso.Start)
	mux.HandleFunc(authn.CallbackPath, sso.Callback)
	mux.HandleFunc(authn.SignOutPath, sso.SignOut)
	mux.HandleFunc("/", func(w http.ResponseWriter, req *http.Request) {
		id, err := sso.Authenticate(req)
		if err != nil {
			status := http.StatusUnauthorized
			if errors.Is(err, authn.ErrCSRF) {
				status = http.StatusForbidden
			}
			http.Error(w, err.Error(), status)
			return
		}
		json.NewEncoder(w).Encode(id)
	})
	r.srv.Config.Handler = sso.Middleware(mux)
}

// browser is a client with a cookie jar that follows redirects.
func (r *ssoRig) browser() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar}
}

// signIn runs the whole flow and returns the browser, signed in.
func (r *ssoRig) signIn() *http.Client {
	r.t.Helper()
	b := r.browser()
	resp, err := b.Get(r.srv.URL + authn.StartURL("test", "/portal/"))
	if err != nil {
		r.t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/portal/" {
		r.t.Fatalf("sign-in ended at %s with %d: %s", resp.Request.URL, resp.StatusCode, body)
	}
	return b
}

// whoami asks the page behind the middleware who the browser is.
func (r *ssoRig) whoami(b *http.Client, req *http.Request) (*authn.Identity, *http.Response, string) {
	r.t.Helper()
	if req == nil {
		req, _ = http.NewRequest(http.MethodGet, r.srv.URL+"/portal/", nil)
	}
	resp, err := b.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return nil, resp, string(body)
	}
	var id authn.Identity
	if err := json.Unmarshal(body, &id); err != nil {
		r.t.Fatalf("identity page: %v: %s", err, body)
	}
	return &id, resp, string(body)
}

func (r *ssoRig) cookies(b *http.Client) []*http.Cookie {
	u, _ := url.Parse(r.srv.URL)
	return b.Jar.Cookies(u)
}

// csrfToken is the session's CSRF token, as the gateway's pages read it.
func (r *ssoRig) csrfToken(b *http.Client) string {
	for _, c := range r.cookies(b) {
		if c.Name == "portcullis_session_csrf" {
			return c.Value
		}
	}
	return ""
}

func (r *ssoRig) setCookies(b *http.Client, cs []*http.Cookie) {
	u, _ := url.Parse(r.srv.URL)
	jar, _ := cookiejar.New(nil)
	jar.SetCookies(u, cs)
	b.Jar = jar
}

func TestSSOSignIn(t *testing.T) {
	r := newSSORig(t, func(p *config.SSOProvider, _ *config.Session) {
		p.GroupNames = map[string]string{"0b1d-guid": "ml-team"}
	})
	r.idp.Claims = map[string]any{
		"email": "alice@example.com", "email_verified": true, "name": "Alice",
		"groups": []string{"0b1d-guid", "eng"}, "roles": []string{"admin"},
	}
	client := r.browser()
	client.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if req.URL.Path == authn.CallbackPath {
			return http.ErrUseLastResponse
		}
		return nil
	}
	// Stop at the IdP's redirect back to look at the request it answers.
	resp, err := client.Get(r.srv.URL + authn.StartURL("test", "/v1/models?x=1"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	auth := r.idp.LastAuthorize()
	if auth.Get("code_challenge_method") != "S256" || len(auth.Get("code_challenge")) != 43 || auth.Get("nonce") == "" ||
		len(auth.Get("state")) < 32 || auth.Get("redirect_uri") != r.srv.URL+authn.CallbackPath || !strings.Contains(auth.Get("scope"), "openid") {
		t.Fatalf("authorize request: %v", auth)
	}
	callback := resp.Header.Get("Location")
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err = client.Get(callback)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/v1/models?x=1" {
		t.Fatalf("callback: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	var session *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "portcullis_session" {
			session = c
		}
	}
	if session == nil || !session.HttpOnly || session.SameSite != http.SameSiteLaxMode || session.Secure || session.Path != "/" || session.MaxAge < 11*3600 {
		t.Fatalf("session cookie: %+v", session)
	}
	id, _, body := r.whoami(client, nil)
	if id == nil {
		t.Fatalf("signed-in page: %s", body)
	}
	if id.Type != authn.TypeUser || id.Subject != r.idp.Issuer()+"#user-1" || id.Email != "alice@example.com" || id.Name != "Alice" ||
		!slices.Equal(id.Groups, []string{"ml-team", "eng"}) || !slices.Equal(id.Roles, []string{"admin"}) || id.Credential != "session:test" {
		t.Fatalf("identity: %+v", id)
	}
	if id.Claims["nonce"] != nil || id.Claims["idp"] != "test" || id.Claims["groups_overage"] != nil {
		t.Fatalf("claims: %v", id.Claims)
	}
	// The same state cannot be used twice.
	resp, err = client.Get(callback)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("replayed callback: %d", resp.StatusCode)
	}
}

func TestSSOStateAndNonceMismatch(t *testing.T) {
	r := newSSORig(t, nil)
	stopAtCallback := func(b *http.Client) *http.Client {
		b.CheckRedirect = func(req *http.Request, via []*http.Request) error {
			if req.URL.Path == authn.CallbackPath {
				return http.ErrUseLastResponse
			}
			return nil
		}
		return b
	}
	callbackURL := func(b *http.Client) string {
		resp, err := b.Get(r.srv.URL + authn.StartURL("test", "/"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.Header.Get("Location")
	}
	get := func(b *http.Client, u string) (int, bool) {
		b.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		resp, err := b.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		for _, c := range resp.Cookies() {
			if c.Name == "portcullis_session" && c.MaxAge > 0 {
				return resp.StatusCode, true
			}
		}
		return resp.StatusCode, false
	}

	t.Run("state altered", func(t *testing.T) {
		b := stopAtCallback(r.browser())
		u, _ := url.Parse(callbackURL(b))
		q := u.Query()
		st := []byte(q.Get("state"))
		st[len(st)-1] ^= 1
		q.Set("state", string(st))
		u.RawQuery = q.Encode()
		if status, session := get(b, u.String()); status != http.StatusBadRequest || session {
			t.Fatalf("status %d, session %v", status, session)
		}
	})
	t.Run("callback in another browser", func(t *testing.T) {
		u := callbackURL(stopAtCallback(r.browser()))
		if status, session := get(r.browser(), u); status != http.StatusBadRequest || session {
			t.Fatalf("status %d, session %v", status, session)
		}
	})
	t.Run("state from another sign-in of the same browser", func(t *testing.T) {
		b := stopAtCallback(r.browser())
		first, _ := url.Parse(callbackURL(b))
		second, _ := url.Parse(callbackURL(b))
		// The first sign-in's code with the second one's state.
		q := first.Query()
		q.Set("state", second.Query().Get("state"))
		first.RawQuery = q.Encode()
		if status, session := get(b, first.String()); status == http.StatusSeeOther || session {
			t.Fatalf("status %d, session %v", status, session)
		}
	})
	t.Run("nonce mismatch", func(t *testing.T) {
		r.idp.WrongNonce = true
		defer func() { r.idp.WrongNonce = false }()
		b := stopAtCallback(r.browser())
		if status, session := get(b, callbackURL(b)); status != http.StatusUnauthorized || session {
			t.Fatalf("status %d, session %v", status, session)
		}
	})
	t.Run("error from the IdP", func(t *testing.T) {
		b := stopAtCallback(r.browser())
		u, _ := url.Parse(callbackURL(b))
		q := u.Query()
		q.Del("code")
		q.Set("error", "access_denied")
		u.RawQuery = q.Encode()
		if status, session := get(b, u.String()); status != http.StatusForbidden || session {
			t.Fatalf("status %d, session %v", status, session)
		}
	})
}

func TestSafeReturnTo(t *testing.T) {
	refused := []string{
		"", "//evil.example", "///evil.example", "/\\evil.example", "\\\\evil.example", "/\\/evil.example",
		"https://evil.example/", "http:evil.example", "javascript:alert(1)", "evil.example", "%2F%2Fevil.example",
		"/%2F%2Fevil.example", "/%2f/evil.example", "/%5Cevil.example", "/%5c%5cevil.example", "/%255C%255Cevil.example",
		"/%252F%252Fevil.example", "/\t/evil.example", "/%09/evil.example", "/\r\nLocation: x", "/%0d%0aSet-Cookie:x",
		"/oauth2/sign_in", "/oauth2/callback?code=x", "/" + strings.Repeat("a", 3000),
	}
	for _, rd := range refused {
		if got := authn.SafeReturnTo(rd); got != authn.HomePath {
			t.Errorf("SafeReturnTo(%q) = %q, want the home page", rd, got)
		}
	}
	for _, rd := range []string{"/", "/portal/", "/v1/models?x=1&y=%2F", "/portal/#top", "/a/b%20c"} {
		if got := authn.SafeReturnTo(rd); got != rd {
			t.Errorf("SafeReturnTo(%q) = %q, want it kept", rd, got)
		}
	}
	// Through the flow: an open-redirect attempt lands on the home page.
	r := newSSORig(t, nil)
	b := r.browser()
	resp, err := b.Get(r.srv.URL + authn.StartURL("test", "//evil.example/x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Request.URL.Host != strings.TrimPrefix(r.srv.URL, "http://") || resp.Request.URL.Path != authn.HomePath {
		t.Fatalf("sign-in returned to %s", resp.Request.URL)
	}
}

func TestSessionCookieTampering(t *testing.T) {
	r := newSSORig(t, nil)
	// Enough groups that the session needs several cookies, as Entra ID
	// tokens with many groups do.
	var groups []string
	for i := range 400 {
		groups = append(groups, "7f3e2a1c-0000-4000-8000-"+strings.Repeat("0", 8)+string(rune('a'+i%26))+string(rune('a'+i/26)))
	}
	r.idp.Claims = map[string]any{"groups": groups}
	b := r.signIn()
	good := r.cookies(b)
	var parts []string
	for _, c := range good {
		if strings.HasPrefix(c.Name, "portcullis_session") && !strings.HasSuffix(c.Name, "_csrf") {
			parts = append(parts, c.Name)
		}
	}
	if len(parts) < 3 {
		t.Fatalf("the session was meant to span several cookies; it has %v", parts)
	}
	if id, _, body := r.whoami(b, nil); id == nil || len(id.Groups) != 400 {
		t.Fatalf("multi-part session refused: %s", body)
	}

	edit := func(f func(map[string]string)) []*http.Cookie {
		vals := map[string]string{}
		for _, c := range good {
			vals[c.Name] = c.Value
		}
		f(vals)
		var out []*http.Cookie
		for name, v := range vals {
			out = append(out, &http.Cookie{Name: name, Value: v})
		}
		return out
	}
	flip := func(s string, i int) string {
		b := []byte(s)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	cases := map[string]func(map[string]string){
		"a character of the first part changed": func(v map[string]string) { v["portcullis_session"] = flip(v["portcullis_session"], 40) },
		"a character of the last part changed": func(v map[string]string) {
			last := parts[len(parts)-1]
			v[last] = flip(v[last], len(v[last])-3)
		},
		"the last part truncated": func(v map[string]string) {
			last := parts[len(parts)-1]
			v[last] = v[last][:len(v[last])-10]
		},
		"a middle part missing": func(v map[string]string) { delete(v, "portcullis_session_1") },
		"the parts re-ordered": func(v map[string]string) {
			v["portcullis_session_1"], v["portcullis_session_2"] = v["portcullis_session_2"], v["portcullis_session_1"]
		},
		"the part count changed": func(v map[string]string) {
			_, rest, _ := strings.Cut(v["portcullis_session"], ".")
			v["portcullis_session"] = "2." + rest
		},
		"a value from another cookie": func(v map[string]string) {
			v["portcullis_session"] = "1." + strings.Repeat("A", 200)
		},
	}
	for name, f := range cases {
		t.Run(name, func(t *testing.T) {
			r.setCookies(b, edit(f))
			id, resp, body := r.whoami(b, nil)
			if id != nil || resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "session ended") {
				t.Fatalf("a tampered session was accepted or answered oddly: %d %s", resp.StatusCode, body)
			}
			cleared := false
			for _, c := range resp.Cookies() {
				if c.Name == "portcullis_session" && c.MaxAge < 0 {
					cleared = true
				}
			}
			if !cleared {
				t.Fatal("the refused session's cookies were not cleared")
			}
		})
	}
}

func TestSessionSurvivesKeyRotation(t *testing.T) {
	r := newSSORig(t, nil)
	b := r.signIn()
	oldKey := r.cfg.Session.Keys[0]
	newKey := sessionKey(t)

	// A restart with a new key first and the old one kept.
	r.cfg.Session.Keys = []config.Secret{newKey, oldKey}
	r.build()
	id, resp, body := r.whoami(b, nil)
	if id == nil {
		t.Fatalf("the session did not survive a rotation that keeps the old key: %s", body)
	}
	if id.Subject != r.idp.Issuer()+"#user-1" {
		t.Fatalf("identity %+v", id)
	}
	_ = resp
	// A session started now is sealed with the new key, and survives the
	// old key's removal.
	fresh := r.signIn()
	r.cfg.Session.Keys = []config.Secret{newKey}
	r.build()
	if id, _, body := r.whoami(fresh, nil); id == nil {
		t.Fatalf("a session sealed with the new key was refused: %s", body)
	}
	if id, _, _ := r.whoami(b, nil); id != nil {
		t.Fatal("a session sealed with a removed key was accepted")
	}
}

func TestSessionCSRF(t *testing.T) {
	r := newSSORig(t, nil)
	b := r.signIn()
	token := r.csrfToken(b)
	if token == "" {
		t.Fatal("no CSRF cookie for the portal's scripts")
	}
	post := func(h map[string]string) *http.Request {
		req, _ := http.NewRequest(http.MethodPost, r.srv.URL+"/v1/chat/completions", strings.NewReader(`{}`))
		for k, v := range h {
			req.Header.Set(k, v)
		}
		return req
	}
	origin := r.srv.URL
	cases := []struct {
		name    string
		headers map[string]string
		allowed bool
	}{
		{"no proof at all", nil, false},
		{"same origin without the token", map[string]string{"Origin": origin, "Sec-Fetch-Site": "same-origin"}, false},
		{"the token from a program without Origin", map[string]string{authn.CSRFHeader: token}, false},
		{"the token from another site", map[string]string{authn.CSRFHeader: token, "Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}, false},
		{"the token from a sibling subdomain", map[string]string{authn.CSRFHeader: token, "Sec-Fetch-Site": "same-site"}, false},
		{"a wrong token", map[string]string{authn.CSRFHeader: token[:len(token)-2] + "xx", "Origin": origin}, false},
		{"the token from the gateway's page", map[string]string{authn.CSRFHeader: token, "Origin": origin, "Sec-Fetch-Site": "same-origin"}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			id, resp, body := r.whoami(b, post(c.headers))
			switch {
			case c.allowed && id == nil:
				t.Fatalf("refused: %d %s", resp.StatusCode, body)
			case !c.allowed && (id != nil || resp.StatusCode != http.StatusForbidden):
				t.Fatalf("not refused with 403: %d %s", resp.StatusCode, body)
			}
		})
	}
	// Reading needs no proof.
	if id, _, body := r.whoami(b, nil); id == nil {
		t.Fatalf("GET refused: %s", body)
	}
}

func TestSessionRefresh(t *testing.T) {
	r := newSSORig(t, func(_ *config.SSOProvider, s *config.Session) {
		s.RefreshBefore = config.Duration(time.Minute)
	})
	r.idp.TokenLifetime = 5 * time.Minute
	b := r.signIn()
	stale := r.cookies(b)

	r.clock.Add(3 * time.Minute)
	if id, _, _ := r.whoami(b, nil); id == nil || r.idp.Refreshes != 0 {
		t.Fatalf("refreshed %d times while the ID token was fresh", r.idp.Refreshes)
	}
	// Within a minute of the ID token's expiry the session renews it.
	r.clock.Add(90 * time.Second)
	id, resp, body := r.whoami(b, nil)
	if id == nil || r.idp.Refreshes != 1 {
		t.Fatalf("renewal before expiry: refreshes %d, %s", r.idp.Refreshes, body)
	}
	renewed := false
	for _, c := range resp.Cookies() {
		renewed = renewed || c.Name == "portcullis_session" && c.MaxAge > 0
	}
	if !renewed {
		t.Fatal("the renewed session was not written back")
	}
	// Past the first ID token's expiry the renewed session still works,
	// and so does a call that still carries the old cookie, without a
	// second refresh (the IdP rotated the refresh token).
	r.clock.Add(2 * time.Minute)
	if id, _, body := r.whoami(b, nil); id == nil {
		t.Fatalf("renewed session refused: %s", body)
	}
	old := r.browser()
	r.setCookies(old, stale)
	if id, _, body := r.whoami(old, nil); id == nil || r.idp.Refreshes != 1 {
		t.Fatalf("old cookie after renewal: refreshes %d, %s", r.idp.Refreshes, body)
	}

	// A failed refresh ends the session cleanly.
	r.idp.RefreshFails = true
	r.clock.Add(5 * time.Minute)
	id, resp, body = r.whoami(b, nil)
	if id != nil || resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, "did not renew") {
		t.Fatalf("failed refresh: %d %s", resp.StatusCode, body)
	}
	if ev := waitEvent(t, r.events, "refresh_failed"); ev.Subject == "" {
		t.Fatalf("event %+v", ev)
	}
	if id, _, _ := r.whoami(b, nil); id != nil {
		t.Fatal("the session came back after a failed refresh")
	}
}

func TestSessionWithoutRefreshTokenEndsWithTheIDToken(t *testing.T) {
	r := newSSORig(t, nil)
	r.idp.NoRefreshToken = true
	r.idp.TokenLifetime = 5 * time.Minute
	b := r.signIn()
	r.clock.Add(4*time.Minute + 30*time.Second)
	if id, _, body := r.whoami(b, nil); id == nil {
		t.Fatalf("refused before the ID token expired: %s", body)
	}
	r.clock.Add(time.Minute)
	if id, _, body := r.whoami(b, nil); id != nil || !strings.Contains(body, "no refresh token") {
		t.Fatalf("accepted after the ID token expired: %s", body)
	}
}

func TestSessionLifetime(t *testing.T) {
	r := newSSORig(t, func(_ *config.SSOProvider, s *config.Session) { s.Lifetime = config.Duration(2 * time.Hour) })
	r.idp.TokenLifetime = 10 * time.Hour
	b := r.signIn()
	r.clock.Add(2*time.Hour + time.Second)
	if id, _, body := r.whoami(b, nil); id != nil || !strings.Contains(body, "session is over") {
		t.Fatalf("accepted past the session's lifetime: %s", body)
	}
}

func TestSignOut(t *testing.T) {
	r := newSSORig(t, nil)
	b := r.signIn()
	token := r.csrfToken(b)
	b.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	signOut := func(form url.Values, origin string) *http.Response {
		req, _ := http.NewRequest(http.MethodPost, r.srv.URL+authn.SignOutPath, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", origin)
		resp, err := b.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if resp := signOut(url.Values{}, r.srv.URL); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("sign-out without the CSRF token: %d", resp.StatusCode)
	}
	if resp := signOut(url.Values{"csrf": {token}}, "https://evil.example"); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("sign-out from another origin: %d", resp.StatusCode)
	}
	if id, _, _ := r.whoami(b, nil); id == nil {
		t.Fatal("a refused sign-out ended the session")
	}
	resp := signOut(url.Values{"csrf": {token}}, r.srv.URL)
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusSeeOther || loc.Host != strings.TrimPrefix(r.idp.URL, "http://") || loc.Path != "/logout" ||
		loc.Query().Get("id_token_hint") == "" || loc.Query().Get("post_logout_redirect_uri") != r.srv.URL+authn.SignedOutPath {
		t.Fatalf("sign-out: %d to %s", resp.StatusCode, loc)
	}
	if id, _, _ := r.whoami(b, nil); id != nil {
		t.Fatal("still signed in after signing out")
	}
}

func TestEntraClaims(t *testing.T) {
	r := newSSORig(t, func(p *config.SSOProvider, _ *config.Session) {
		p.Kind = "entra"
		p.Claims = config.SSOClaims{}
		p.GroupNames = map[string]string{"11111111-aaaa": "ml-team"}
	})
	// applySSODefaults ran at parse time; redo the kind's defaults.
	r.cfg.Providers[0].Claims = config.SSOClaims{Subject: []string{"tid", "oid"}, SubjectPrefix: ptr("entra:"), Email: "email", Name: "name", Groups: "groups", Roles: "roles"}
	r.build()
	r.idp.Claims = map[string]any{
		"tid": "tenant-1", "oid": "object-9", "email": "mallory@example.com", "preferred_username": "alice@example.com",
		"groups": []string{"11111111-aaaa", "22222222-bbbb"},
	}
	b := r.signIn()
	id, _, body := r.whoami(b, nil)
	if id == nil {
		t.Fatal(body)
	}
	if id.Subject != "entra:tenant-1/object-9" || id.Email != "" || !slices.Equal(id.Groups, []string{"ml-team", "22222222-bbbb"}) {
		t.Fatalf("identity %+v (an unverified email must not become the identity's email)", id)
	}

	// Too many groups: Entra leaves them out and says so.
	r.idp.Claims = map[string]any{"tid": "tenant-1", "oid": "object-9", "_claim_names": map[string]any{"groups": "src1"},
		"_claim_sources": map[string]any{"src1": map[string]any{"endpoint": "https://graph.example/x"}}}
	b = r.signIn()
	id, _, body = r.whoami(b, nil)
	if id == nil || id.Claims["groups_overage"] != true || len(id.Groups) != 0 || id.Claims["_claim_names"] != nil {
		t.Fatalf("overage: %s", body)
	}
	waitEvent(t, r.events, "groups_overage")
}

func ptr(s string) *string { return &s }

func waitEvent(t *testing.T, events chan authn.SSOEvent, kind string) authn.SSOEvent {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case e := <-events:
			if e.Kind == kind {
				return e
			}
		case <-timeout:
			t.Fatalf("no %s event", kind)
		}
	}
}

// An IdP that is down at the first sign-in does not break the gateway: the
// browser gets a clear page, discovery is not retried for a few seconds,
// and the sign-in works once the IdP is back.
func TestSignInWhileTheIdPIsDown(t *testing.T) {
	r := newSSORig(t, nil)
	r.idp.Down = true
	start := func() (*http.Response, string) {
		resp, err := r.browser().Get(r.srv.URL + authn.StartURL("test", "/portal/"))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, string(body)
	}
	if resp, body := start(); resp.StatusCode != http.StatusBadGateway || !strings.Contains(body, "cannot be reached") {
		t.Fatalf("IdP down: %d %s", resp.StatusCode, body)
	}
	r.idp.Down = false
	if resp, _ := start(); resp.StatusCode != http.StatusBadGateway || r.idp.Discoveries != 1 {
		t.Fatalf("discovery retried at once: %d, %d discoveries", resp.StatusCode, r.idp.Discoveries)
	}
	r.clock.Add(11 * time.Second)
	if id, _, body := r.whoami(r.signIn(), nil); id == nil || r.idp.Discoveries != 2 {
		t.Fatalf("after the outage: %s, %d discoveries", body, r.idp.Discoveries)
	}
}
