package authn

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"portcullis/config"
)

// benchSession returns an SSO and a request carrying a signed-in session
// whose ID token holds groups, as a browser's call to the API would.
func benchSession(b *testing.B) (*SSO, *http.Request) {
	b.Helper()
	prefix := "https://idp.example#"
	cfg := config.SSO{
		PublicURL: "https://gw.example",
		Session: config.Session{Keys: []config.Secret{"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="},
			Lifetime: config.Duration(12 * time.Hour), RefreshBefore: config.Duration(time.Minute), CookieName: "portcullis_session"},
		Providers: []config.SSOProvider{{Name: "corp", DisplayName: "Corp", Issuer: "https://idp.example", ClientID: "gw",
			Claims: config.SSOClaims{Subject: []string{"sub"}, SubjectPrefix: &prefix, Email: "email", Name: "name", Groups: "groups", Roles: "roles"}}},
	}
	s, err := NewSSO(cfg, SSOOptions{})
	if err != nil {
		b.Fatal(err)
	}
	claims, _ := json.Marshal(map[string]any{"iss": "https://idp.example", "sub": "user-1", "aud": "gw", "email": "a@example.com", "email_verified": true,
		"name": "Alice", "groups": []string{"engineering", "ml-team", "analysts"}, "exp": time.Now().Add(time.Hour).Unix()})
	now := time.Now()
	sess := &Session{ID: "s1", Provider: "corp", IDToken: "e30." + base64.RawURLEncoding.EncodeToString(claims) + ".sig", RefreshToken: "rt",
		TokenExpiry: now.Add(time.Hour).Unix(), Created: now.Unix(), Expires: now.Add(12 * time.Hour).Unix(), CSRF: "c"}
	var mapped map[string]any
	json.Unmarshal(claims, &mapped)
	if sess.identity, _, err = s.identify(s.providers[0], mapped, sess); err != nil {
		b.Fatal(err)
	}
	w := httptest.NewRecorder()
	if err := s.writeSession(w, httptest.NewRequest(http.MethodGet, "/", nil), sess); err != nil {
		b.Fatal(err)
	}
	r := httptest.NewRequest(http.MethodGet, "/v1/models", nil)
	for _, c := range w.Result().Cookies() {
		r.AddCookie(c)
	}
	return s, r
}

// BenchmarkSession measures what a session-cookie call costs the request
// path: Middleware opening the cookie and Authenticate reading the
// identity. cached: a session seen before (the common case); opened: the
// first call of a session on this replica (decrypt, decode, map claims).
func BenchmarkSession(b *testing.B) {
	for _, cached := range []bool{true, false} {
		name := "opened"
		if cached {
			name = "cached"
		}
		b.Run(name, func(b *testing.B) {
			s, r := benchSession(b)
			var id *Identity
			h := s.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				id, _ = s.Authenticate(r)
			}))
			w := httptest.NewRecorder()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if !cached {
					s.sessions.Purge()
				}
				h.ServeHTTP(w, r)
			}
			if id == nil || id.Subject != "https://idp.example#user-1" {
				b.Fatalf("identity %+v", id)
			}
		})
	}
}
