package authn

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"portcullis/config"
)

// idp is a fake issuer: a JWKS endpoint whose keys the test changes, and
// which can be taken down.
type idp struct {
	srv     *httptest.Server
	mu      sync.Mutex
	keys    map[string]*rsa.PrivateKey
	down    atomic.Bool
	fetches atomic.Int64
}

const testIssuer = "https://idp.example.test"

func newIDP(t testing.TB) *idp {
	t.Helper()
	p := &idp{keys: map[string]*rsa.PrivateKey{"k1": rsaKey(t)}}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.fetches.Add(1)
		if p.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		var set struct {
			Keys []map[string]string `json:"keys"`
		}
		for kid, k := range p.keys {
			set.Keys = append(set.Keys, map[string]string{
				"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
				"n": base64.RawURLEncoding.EncodeToString(k.N.Bytes()),
				"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(k.E)).Bytes()),
			})
		}
		json.NewEncoder(w).Encode(set)
	}))
	t.Cleanup(p.srv.Close)
	return p
}

var (
	rsaOnce sync.Once
	rsaPool []*rsa.PrivateKey
	rsaNext atomic.Int64
)

// rsaKey returns a 2048-bit key from a small pool made once, since RSA key
// generation is slow.
func rsaKey(t testing.TB) *rsa.PrivateKey {
	rsaOnce.Do(func() {
		for range 4 {
			k, err := rsa.GenerateKey(rand.Reader, 2048)
			if err != nil {
				panic(err)
			}
			rsaPool = append(rsaPool, k)
		}
	})
	return rsaPool[int(rsaNext.Add(1)-1)%len(rsaPool)]
}

func (p *idp) key(kid string) *rsa.PrivateKey {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.keys[kid]
}

func (p *idp) issuerConfig() config.Issuer {
	return config.Issuer{
		Name:            "test-idp",
		Issuer:          testIssuer,
		Audiences:       []string{"portcullis"},
		JWKSURL:         p.srv.URL,
		Algorithms:      []string{"RS256", "ES256", "EdDSA"},
		Leeway:          config.Duration(5 * time.Second),
		RefreshInterval: config.Duration(time.Hour),
	}
}

func goodClaims() jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{
		"iss":    testIssuer,
		"aud":    "portcullis",
		"sub":    "svc-123",
		"exp":    now.Add(10 * time.Minute).Unix(),
		"iat":    now.Unix(),
		"nbf":    now.Unix(),
		"jti":    "jti-" + time.Now().Format(time.RFC3339Nano),
		"groups": []string{"agents", "ml-team"},
		"scope":  "read write",
		"name":   "Build agent",
	}
}

func sign(t testing.TB, key any, method jwt.SigningMethod, kid string, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newTestJWTs(t *testing.T, issuers ...config.Issuer) *JWTs {
	t.Helper()
	j, err := NewJWTs(context.Background(), issuers, JWTOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return j
}

func with(c jwt.MapClaims, edit func(jwt.MapClaims)) jwt.MapClaims {
	edit(c)
	return c
}

// Every way a token can be wrong is refused, each with a reason that says
// which.
func TestJWTRefusals(t *testing.T) {
	p := newIDP(t)
	cfg := p.issuerConfig()
	replayCfg := cfg
	replayCfg.Issuer = "https://replay.example.test"
	replayCfg.ReplayProtection = true
	j := newTestJWTs(t, cfg, replayCfg)
	k1 := p.key("k1")
	good := sign(t, k1, jwt.SigningMethodRS256, "k1", goodClaims())
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: must(x509.MarshalPKIXPublicKey(&k1.PublicKey))})

	parts := strings.Split(good, ".")
	tamperedPayload := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"iss":"`+testIssuer+`","aud":"portcullis","sub":"admin","exp":9999999999}`)) + "." + parts[2]
	sig := []byte(parts[2])
	if sig[10] == 'A' {
		sig[10] = 'B'
	} else {
		sig[10] = 'A'
	}
	tamperedSig := parts[0] + "." + parts[1] + "." + string(sig)
	noneTok := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + parts[1] + "."

	replayClaims := with(goodClaims(), func(c jwt.MapClaims) { c["iss"] = replayCfg.Issuer; c["jti"] = "once" })
	replayed := sign(t, k1, jwt.SigningMethodRS256, "k1", replayClaims)
	if _, err := j.Verify(context.Background(), replayed); err != nil {
		t.Fatalf("first use of a replay-protected token: %v", err)
	}
	big := with(goodClaims(), func(c jwt.MapClaims) { c["pad"] = strings.Repeat("x", MaxTokenBytes) })
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)

	tests := []struct {
		name, token, reason string
	}{
		{"alg none", noneTok, "algorithm is not accepted"},
		{"HS256 signed with the issuer's public key", sign(t, pubPEM, jwt.SigningMethodHS256, "k1", goodClaims()), "algorithm is not accepted"},
		{"expired", sign(t, k1, jwt.SigningMethodRS256, "k1", with(goodClaims(), func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-time.Minute).Unix() })), "expired at"},
		{"no exp", sign(t, k1, jwt.SigningMethodRS256, "k1", with(goodClaims(), func(c jwt.MapClaims) { delete(c, "exp") })), "no exp claim"},
		{"nbf in the future", sign(t, k1, jwt.SigningMethodRS256, "k1", with(goodClaims(), func(c jwt.MapClaims) { c["nbf"] = time.Now().Add(time.Hour).Unix() })), "not valid yet"},
		{"iat in the future", sign(t, k1, jwt.SigningMethodRS256, "k1", with(goodClaims(), func(c jwt.MapClaims) { c["iat"] = time.Now().Add(time.Hour).Unix() })), "iat is in the future"},
		{"wrong aud", sign(t, k1, jwt.SigningMethodRS256, "k1", with(goodClaims(), func(c jwt.MapClaims) { c["aud"] = "another-service" })), "audience is not one"},
		{"missing aud", sign(t, k1, jwt.SigningMethodRS256, "k1", with(goodClaims(), func(c jwt.MapClaims) { delete(c, "aud") })), "no aud claim"},
		{"wrong iss", sign(t, k1, jwt.SigningMethodRS256, "k1", with(goodClaims(), func(c jwt.MapClaims) { c["iss"] = "https://evil.example" })), "issuer 'https://evil.example' is not trusted"},
		{"no iss", sign(t, k1, jwt.SigningMethodRS256, "k1", with(goodClaims(), func(c jwt.MapClaims) { delete(c, "iss") })), "no iss claim"},
		{"unknown kid", sign(t, k1, jwt.SigningMethodRS256, "k9", goodClaims()), "matches the token's kid 'k9'"},
		{"key of another type for the alg", sign(t, ec, jwt.SigningMethodES256, "k1", goodClaims()), "matches the token's kid 'k1' and algorithm 'ES256'"},
		{"tampered payload", tamperedPayload, "signature is invalid"},
		{"tampered signature", tamperedSig, "signature is invalid"},
		{"signed by another key", sign(t, rsaKey(t), jwt.SigningMethodRS256, "k1", goodClaims()), "signature is invalid"},
		{"over 16 KiB", sign(t, k1, jwt.SigningMethodRS256, "k1", big), "the limit is 16384"},
		{"replayed jti", replayed, "already used"},
		{"garbage", "eyJhbGciOi.eyJpc3Mi.x", "malformed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := j.Verify(context.Background(), tt.token)
			var ref *Refusal
			if id != nil || !errors.As(err, &ref) || !errors.Is(err, ErrInvalidCredential) {
				t.Fatalf("Verify = %+v, %v; want a refusal", id, err)
			}
			if !strings.Contains(ref.Reason, tt.reason) {
				t.Errorf("reason %q does not say %q", ref.Reason, tt.reason)
			}
			if strings.Contains(ref.Reason, tt.token) {
				t.Errorf("reason %q holds the token", ref.Reason)
			}
		})
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// A good token maps to a service identity whose subject is qualified by
// the issuer, with groups, roles from scopes, and the claims.
func TestJWTIdentity(t *testing.T) {
	p := newIDP(t)
	j := newTestJWTs(t, p.issuerConfig())
	id, err := j.Verify(context.Background(), sign(t, p.key("k1"), jwt.SigningMethodRS256, "k1", goodClaims()))
	if err != nil {
		t.Fatal(err)
	}
	if id.Type != TypeService || id.Subject != testIssuer+"#svc-123" || id.Issuer != testIssuer || id.Name != "Build agent" ||
		!slices.Equal(id.Groups, []string{"agents", "ml-team"}) || !slices.Equal(id.Roles, []string{"scope:read", "scope:write"}) ||
		id.Credential != "jwt:test-idp" || id.Claims["sub"] != "svc-123" {
		t.Errorf("identity = %+v", id)
	}

	// A custom mapping: the subject as it is, groups from another claim.
	cfg := p.issuerConfig()
	empty := ""
	cfg.Claims = config.ClaimMapping{Subject: "client_id", SubjectPrefix: &empty, Groups: "teams"}
	cfg.RequiredClaims = map[string]string{"repository_owner": "acme"}
	j = newTestJWTs(t, cfg)
	c := with(goodClaims(), func(c jwt.MapClaims) { c["client_id"] = "abc"; c["teams"] = "a b"; c["repository_owner"] = "acme" })
	id, err = j.Verify(context.Background(), sign(t, p.key("k1"), jwt.SigningMethodRS256, "k1", c))
	if err != nil || id.Subject != "abc" || !slices.Equal(id.Groups, []string{"a", "b"}) {
		t.Fatalf("identity = %+v, %v", id, err)
	}
	c = with(goodClaims(), func(c jwt.MapClaims) { c["client_id"] = "abc"; c["repository_owner"] = "evil" })
	if _, err := j.Verify(context.Background(), sign(t, p.key("k1"), jwt.SigningMethodRS256, "k1", c)); err == nil || !strings.Contains(err.Error(), "repository_owner") {
		t.Errorf("required claim with another value: %v", err)
	}
}

// A verified token is cached: a second call skips the signature check,
// which shows in that it keeps working when its key is gone from the IdP
// and the IdP is down; a copy is returned, so callers cannot change it.
func TestJWTCache(t *testing.T) {
	p := newIDP(t)
	j := newTestJWTs(t, p.issuerConfig())
	tok := sign(t, p.key("k1"), jwt.SigningMethodRS256, "k1", goodClaims())
	id, err := j.Verify(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	id.Groups[0] = "changed"
	if j.cache.lru.Len() != 1 {
		t.Fatalf("cache holds %d entries", j.cache.lru.Len())
	}
	for _, k := range j.cache.lru.Keys() {
		if strings.Contains(string(k[:]), tok) {
			t.Fatal("the cache key holds the token")
		}
	}
	id2, err := j.Verify(context.Background(), tok)
	if err != nil || id2.Groups[0] != "agents" {
		t.Fatalf("cached verify = %+v, %v", id2, err)
	}
	// An entry is not used past the token's exp.
	j.now = func() time.Time { return time.Now().Add(11 * time.Minute) }
	if _, err := j.Verify(context.Background(), tok); err == nil || !strings.Contains(err.Error(), "expired") {
		t.Errorf("verify after exp = %v", err)
	}
}

// Unknown kids refetch the keys at most once per refresh interval; a new
// key at the IdP is picked up; when the IdP is down, cached keys keep
// working and the failure is reported.
func TestJWTKeyRotationAndOutage(t *testing.T) {
	p := newIDP(t)
	cfg := p.issuerConfig()
	cfg.RefreshInterval = config.Duration(200 * time.Millisecond)
	var reported atomic.Int64
	j, err := NewJWTs(context.Background(), []config.Issuer{cfg}, JWTOptions{
		OnKeyError: func(issuer string, failures int64, err error) { reported.Store(failures) },
	})
	if err != nil {
		t.Fatal(err)
	}
	start := p.fetches.Load()
	for range 20 {
		j.Verify(context.Background(), sign(t, p.key("k1"), jwt.SigningMethodRS256, "nope", goodClaims()))
	}
	if n := p.fetches.Load() - start; n > 1 {
		t.Errorf("20 unknown kids within the refresh interval caused %d fetches; want at most 1", n)
	}

	// Rotation: the IdP adds k2 and signs with it.
	p.mu.Lock()
	p.keys["k2"] = rsaKey(t)
	p.mu.Unlock()
	time.Sleep(250 * time.Millisecond)
	if _, err := j.Verify(context.Background(), sign(t, p.key("k2"), jwt.SigningMethodRS256, "k2", goodClaims())); err != nil {
		t.Fatalf("token signed with the rotated key: %v", err)
	}

	// Outage: a new token with a known kid still verifies.
	p.down.Store(true)
	time.Sleep(250 * time.Millisecond)
	j.Verify(context.Background(), sign(t, p.key("k1"), jwt.SigningMethodRS256, "unknown", goodClaims()))
	if reported.Load() == 0 {
		t.Error("the failed fetch was not reported")
	}
	c := with(goodClaims(), func(c jwt.MapClaims) { c["jti"] = "fresh" })
	if _, err := j.Verify(context.Background(), sign(t, p.key("k1"), jwt.SigningMethodRS256, "k1", c)); err != nil {
		t.Fatalf("token with a cached key during the outage: %v", err)
	}
}

// Static keys (air-gapped): a PEM public key verifies tokens without any
// fetch, whatever their kid.
func TestJWTStaticKeys(t *testing.T) {
	k := rsaKey(t)
	file := filepath.Join(t.TempDir(), "keys.pem")
	os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: must(x509.MarshalPKIXPublicKey(&k.PublicKey))}), 0o600)
	cfg := config.Issuer{Name: "static", Issuer: testIssuer, Audiences: []string{"portcullis"}, KeysFile: file, Algorithms: []string{"RS256"}}
	j := newTestJWTs(t, cfg)
	if _, err := j.Verify(context.Background(), sign(t, k, jwt.SigningMethodRS256, "any", goodClaims())); err != nil {
		t.Fatal(err)
	}
}

// Minted tokens carry the caller's identity, are capped in lifetime and
// scope, verify through JWTs, and are refused once revoked, cached or not.
func TestMintedTokens(t *testing.T) {
	dir := t.TempDir()
	revoked := filepath.Join(dir, "revoked.txt")
	m, err := NewMinter(config.Tokens{
		SigningKeyFile: filepath.Join(dir, "key.pem"), Algorithm: "ES256", Issuer: "portcullis", Audience: "portcullis",
		DefaultLifetime: config.Duration(15 * time.Minute), MaxLifetime: config.Duration(time.Hour), RevokedFile: revoked,
	})
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "key.pem")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", fi, err)
	}
	j, err := NewJWTs(context.Background(), nil, JWTOptions{Minted: m})
	if err != nil {
		t.Fatal(err)
	}
	caller := &Identity{Type: TypeUser, Subject: "alice", Groups: []string{"eng"}, Email: "alice@example.com"}
	if _, err := m.Mint(caller, 2*time.Hour, nil, time.Now()); err == nil {
		t.Error("a lifetime over the maximum was allowed")
	}
	tok, err := m.Mint(caller, 0, []string{"demo"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	id, err := j.Verify(context.Background(), tok.Token)
	if err != nil {
		t.Fatal(err)
	}
	if id.Type != TypeUser || id.Subject != "alice" || !slices.Equal(id.Groups, []string{"eng"}) || id.Credential != "minted:"+tok.ID ||
		len(listClaim(id.Claims["models"])) != 1 || time.Until(tok.Expires) > 15*time.Minute {
		t.Errorf("identity = %+v, expires %s", id, tok.Expires)
	}
	// A token minted from it cannot widen the model scope.
	if _, err := m.Mint(id, 0, []string{"other"}, time.Now()); err == nil {
		t.Error("a narrowed token widened its scope")
	}
	os.WriteFile(revoked, []byte("# revoked\n"+tok.ID+"\n"), 0o600)
	if err := m.ReloadRevoked(); err != nil {
		t.Fatal(err)
	}
	if _, err := j.Verify(context.Background(), tok.Token); err == nil || !strings.Contains(err.Error(), "revoked") {
		t.Errorf("revoked token: %v", err)
	}
	var jwks struct {
		Keys []map[string]string `json:"keys"`
	}
	if err := json.Unmarshal(m.JWKS(), &jwks); err != nil || len(jwks.Keys) != 1 || jwks.Keys[0]["d"] != "" || jwks.Keys[0]["alg"] != "ES256" {
		t.Errorf("jwks = %s, %v", m.JWKS(), err)
	}
	// Rotation keeps the old key for verification.
	if err := RotateKeyFile(filepath.Join(dir, "key.pem"), "EdDSA"); err != nil {
		t.Fatal(err)
	}
	m2, err := NewMinter(config.Tokens{SigningKeyFile: filepath.Join(dir, "key.pem"), Issuer: "portcullis", Audience: "portcullis",
		DefaultLifetime: config.Duration(time.Minute), MaxLifetime: config.Duration(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	j2, _ := NewJWTs(context.Background(), nil, JWTOptions{Minted: m2})
	if _, err := j2.Verify(context.Background(), tok.Token); err != nil {
		t.Errorf("token signed before the rotation: %v", err)
	}
	tok2, _ := m2.Mint(caller, 0, nil, time.Now())
	if _, err := j2.Verify(context.Background(), tok2.Token); err != nil || !strings.HasPrefix(tok2.Token, "eyJhbGciOiJFZERTQSI") {
		t.Errorf("token signed after the rotation: %v", err)
	}
}

// An API key past its expiry, or revoked in the keys file, is refused with
// a reason; one in the file is accepted.
func TestAPIKeyExpiryAndFile(t *testing.T) {
	keys, err := NewAPIKeys([]config.APIKey{
		{Name: "old", Hash: HashKey(aliceKey), Subject: "alice", Expires: time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)},
		{Name: "scoped", Hash: HashKey(botKey), Subject: "bot", Models: []string{"demo"}, Expires: time.Now().Add(time.Hour).UTC().Format(time.RFC3339)},
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = keys.Authenticate(request(map[string]string{"Authorization": "Bearer " + aliceKey}))
	if ref := (*Refusal)(nil); !errors.As(err, &ref) || !strings.Contains(ref.Reason, "expired at") {
		t.Errorf("expired key: %v", err)
	}
	id, err := keys.Authenticate(request(map[string]string{"Authorization": "Bearer " + botKey}))
	if err != nil || listClaim(id.Claims["models"])[0] != "demo" {
		t.Errorf("scoped key: %+v %v", id, err)
	}

	file := filepath.Join(t.TempDir(), "keys.yaml")
	key, hash := GenerateKey()
	kf := &config.KeysFile{Keys: []config.FileKey{{APIKey: config.APIKey{Name: "f", Hash: hash, Subject: "filed"}}}}
	if err := kf.Save(file); err != nil {
		t.Fatal(err)
	}
	if err := keys.LoadFile(file); err != nil {
		t.Fatal(err)
	}
	if id, err := keys.Authenticate(request(map[string]string{"Authorization": "Bearer " + key})); err != nil || id.Subject != "filed" {
		t.Fatalf("file key: %+v %v", id, err)
	}
	kf.Keys[0].Revoked = time.Now().UTC().Format(time.RFC3339)
	kf.Keys[0].Description = "changed size" // the reload notices size or mtime
	kf.Save(file)
	if err := keys.LoadFile(file); err != nil {
		t.Fatal(err)
	}
	if _, err := keys.Authenticate(request(map[string]string{"Authorization": "Bearer " + key})); err == nil || !strings.Contains(err.Error(), "revoked") {
		t.Errorf("revoked file key: %v", err)
	}
}
