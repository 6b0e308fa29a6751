package testkit

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// OIDC is a small OpenID Connect provider for unit tests of the sign-in
// flow: discovery, keys, an authorize endpoint that signs in at once (no
// login form), a token endpoint for the authorization code (with PKCE)
// and refresh grants, and an end_session_endpoint. Its knobs let a test
// make it misbehave in the ways the gateway must refuse. The end-to-end
// tests use a real IdP (Dex) instead.
type OIDC struct {
	*httptest.Server

	ClientID     string
	ClientSecret string
	key          *rsa.PrivateKey

	mu sync.Mutex
	// Claims are added to every ID token (sub defaults to "user-1").
	Claims map[string]any
	// TokenLifetime is the ID token's lifetime. Zero value: 1h.
	TokenLifetime time.Duration
	// Now is the provider's clock. Zero value: time.Now.
	Now func() time.Time
	// WrongNonce, when set, puts another nonce into ID tokens.
	WrongNonce bool
	// RefreshFails makes the refresh grant answer invalid_grant.
	RefreshFails bool
	// NoRefreshToken leaves the refresh token out of code exchanges.
	NoRefreshToken bool
	// Refreshes counts successful refresh grants.
	Refreshes int
	// Down makes discovery answer 503, as an IdP in an outage does.
	Down bool
	// Discoveries counts discovery requests.
	Discoveries int

	codes    map[string]authCode
	refresh  map[string]bool
	lastAuth url.Values
}

type authCode struct {
	nonce     string
	challenge string
	redirect  string
}

// NewOIDC starts the provider; it stops when the test ends.
func NewOIDC(t testing.TB) *OIDC {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p := &OIDC{
		ClientID:     "portcullis",
		ClientSecret: "test-secret",
		key:          key,
		Claims:       map[string]any{},
		codes:        map[string]authCode{},
		refresh:      map[string]bool{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", p.discovery)
	mux.HandleFunc("/keys", p.keys)
	mux.HandleFunc("/authorize", p.authorize)
	mux.HandleFunc("/token", p.token)
	p.Server = httptest.NewServer(mux)
	t.Cleanup(p.Close)
	return p
}

// Issuer is the provider's issuer URL.
func (p *OIDC) Issuer() string { return p.URL }

// LastAuthorize returns the query of the last authorize request.
func (p *OIDC) LastAuthorize() url.Values {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.lastAuth
}

func (p *OIDC) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

func (p *OIDC) discovery(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	p.Discoveries++
	down := p.Down
	p.mu.Unlock()
	if down {
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		return
	}
	oidcJSON(w, http.StatusOK, map[string]any{
		"issuer":                                p.URL,
		"authorization_endpoint":                p.URL + "/authorize",
		"token_endpoint":                        p.URL + "/token",
		"jwks_uri":                              p.URL + "/keys",
		"end_session_endpoint":                  p.URL + "/logout",
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"response_types_supported":              []string{"code"},
		"subject_types_supported":               []string{"public"},
		"code_challenge_methods_supported":      []string{"S256"},
	})
}

func (p *OIDC) keys(w http.ResponseWriter, r *http.Request) {
	oidcJSON(w, http.StatusOK, map[string]any{"keys": []map[string]string{{
		"kty": "RSA", "kid": "k1", "use": "sig", "alg": "RS256",
		"n": base64.RawURLEncoding.EncodeToString(p.key.N.Bytes()),
		"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(p.key.E)).Bytes()),
	}}})
}

// authorize signs the user in at once and redirects back with a code.
func (p *OIDC) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	p.mu.Lock()
	p.lastAuth = q
	code := oidcRandom()
	p.codes[code] = authCode{nonce: q.Get("nonce"), challenge: q.Get("code_challenge"), redirect: q.Get("redirect_uri")}
	p.mu.Unlock()
	if q.Get("client_id") != p.ClientID || q.Get("code_challenge_method") != "S256" {
		http.Error(w, "bad authorize request", http.StatusBadRequest)
		return
	}
	back, _ := url.Parse(q.Get("redirect_uri"))
	bq := back.Query()
	bq.Set("code", code)
	bq.Set("state", q.Get("state"))
	back.RawQuery = bq.Encode()
	http.Redirect(w, r, back.String(), http.StatusFound)
}

func (p *OIDC) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		oidcJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request"})
		return
	}
	id, secret, ok := r.BasicAuth()
	if !ok {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	if id != p.ClientID || secret != p.ClientSecret {
		oidcJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_client"})
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var nonce string
	issueRefresh := !p.NoRefreshToken
	switch r.PostForm.Get("grant_type") {
	case "authorization_code":
		c, ok := p.codes[r.PostForm.Get("code")]
		delete(p.codes, r.PostForm.Get("code"))
		sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
		if !ok || c.redirect != r.PostForm.Get("redirect_uri") || base64.RawURLEncoding.EncodeToString(sum[:]) != c.challenge {
			oidcJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_grant"})
			return
		}
		nonce = c.nonce
	case "refresh_token":
		rt := r.PostForm.Get("refresh_token")
		if p.RefreshFails || !p.refresh[rt] {
			oidcJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_grant"})
			return
		}
		delete(p.refresh, rt) // refresh tokens rotate
		p.Refreshes++
		issueRefresh = true
	default:
		oidcJSON(w, http.StatusBadRequest, map[string]string{"error": "unsupported_grant_type"})
		return
	}
	if p.WrongNonce && nonce != "" {
		nonce = "another-nonce"
	}
	life := p.TokenLifetime
	if life == 0 {
		life = time.Hour
	}
	now := p.now()
	claims := jwt.MapClaims{"iss": p.URL, "aud": p.ClientID, "sub": "user-1", "iat": now.Unix(), "exp": now.Add(life).Unix()}
	if nonce != "" {
		claims["nonce"] = nonce
	}
	for k, v := range p.Claims {
		claims[k] = v
	}
	t := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	t.Header["kid"] = "k1"
	idToken, err := t.SignedString(p.key)
	if err != nil {
		oidcJSON(w, http.StatusInternalServerError, map[string]string{"error": "server_error"})
		return
	}
	resp := map[string]any{"access_token": oidcRandom(), "token_type": "Bearer", "expires_in": int(life.Seconds()), "id_token": idToken}
	if issueRefresh {
		rt := oidcRandom()
		p.refresh[rt] = true
		resp["refresh_token"] = rt
	}
	oidcJSON(w, http.StatusOK, resp)
}

func oidcJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func oidcRandom() string {
	b := make([]byte, 16)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
