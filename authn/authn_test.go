package authn

import (
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"portcullis/config"
)

const (
	aliceKey = "pcx_alice_test_key_0000000000000000000000000"
	botKey   = "pcx_bot_test_key_11111111111111111111111111"
)

func testKeys(t *testing.T) *APIKeys {
	t.Helper()
	a, err := NewAPIKeys([]config.APIKey{
		{Name: "alice-laptop", Hash: HashKey(aliceKey), Subject: "alice", Groups: []string{"engineering", "demo"}},
		{Name: "ci-bot", Hash: HashKey(botKey), Subject: "ci"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func request(headers map[string]string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", nil)
	for k, v := range headers {
		r.Header.Set(k, v)
	}
	return r
}

// A JWT-shaped token no API key matches: header.payload.signature.
const jwtish = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl"

func TestAPIKeysAuthenticate(t *testing.T) {
	keys := testKeys(t)
	tests := []struct {
		name        string
		headers     map[string]string
		wantSubject string
		wantErr     error
	}{
		{"bearer", map[string]string{"Authorization": "Bearer " + aliceKey}, "alice", nil},
		{"bearer lower-case scheme", map[string]string{"Authorization": "bearer " + aliceKey}, "alice", nil},
		{"bearer with padding", map[string]string{"Authorization": "Bearer  " + aliceKey + " "}, "alice", nil},
		{"x-api-key", map[string]string{"X-Api-Key": botKey}, "ci", nil},
		{"x-api-key lower-case", map[string]string{"x-api-key": botKey}, "ci", nil},
		{"authorization wins over x-api-key", map[string]string{"Authorization": "Bearer " + aliceKey, "X-Api-Key": botKey}, "alice", nil},
		{"unknown key", map[string]string{"Authorization": "Bearer pcx_nobody"}, "", ErrInvalidCredential},
		{"unknown x-api-key", map[string]string{"X-Api-Key": "sk-wrong"}, "", ErrInvalidCredential},
		{"key with one character changed", map[string]string{"Authorization": "Bearer " + aliceKey[:len(aliceKey)-1] + "1"}, "", ErrInvalidCredential},
		{"hash presented as key", map[string]string{"Authorization": "Bearer " + HashKey(aliceKey)}, "", ErrInvalidCredential},
		{"jwt-looking token", map[string]string{"Authorization": "Bearer " + jwtish}, "", ErrNoCredential},
		{"jwt in x-api-key", map[string]string{"X-Api-Key": jwtish}, "", ErrNoCredential},
		{"two dots but not ey", map[string]string{"Authorization": "Bearer abc.def.ghi"}, "", ErrInvalidCredential},
		{"ey but three dots", map[string]string{"Authorization": "Bearer eyA.b.c.d"}, "", ErrInvalidCredential},
		{"no header", nil, "", ErrNoCredential},
		{"empty bearer", map[string]string{"Authorization": "Bearer "}, "", ErrNoCredential},
		{"scheme only", map[string]string{"Authorization": "Bearer"}, "", ErrNoCredential},
		{"basic auth", map[string]string{"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte("u:"+aliceKey))}, "", ErrNoCredential},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := keys.Authenticate(request(tt.headers))
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || id != nil {
					t.Fatalf("Authenticate = %+v, %v; want %v", id, err, tt.wantErr)
				}
				return
			}
			if err != nil || id == nil || id.Subject != tt.wantSubject {
				t.Fatalf("Authenticate = %+v, %v; want subject %q", id, err, tt.wantSubject)
			}
		})
	}
}

func TestAPIKeysIdentity(t *testing.T) {
	keys := testKeys(t)
	id, err := keys.Authenticate(request(map[string]string{"Authorization": "Bearer " + aliceKey}))
	if err != nil {
		t.Fatal(err)
	}
	want := Identity{
		Type:       TypeAPIKey,
		Subject:    "alice",
		Groups:     []string{"engineering", "demo"},
		Credential: "alice-laptop",
	}
	if !reflect.DeepEqual(*id, want) {
		t.Errorf("identity = %+v, want %+v", *id, want)
	}
	for _, field := range []string{id.Credential, id.Subject, id.Email, id.Name, id.Issuer} {
		if strings.Contains(field, aliceKey) {
			t.Errorf("identity carries the key itself: %+v", id)
		}
	}

	// Each call gets its own Identity value.
	id.Subject = "mallory"
	again, _ := keys.Authenticate(request(map[string]string{"Authorization": "Bearer " + aliceKey}))
	if again.Subject != "alice" {
		t.Errorf("changing a returned identity changed the stored one: %q", again.Subject)
	}
}

// The configured groups are copied: changing the config after NewAPIKeys
// does not change who a key is.
func TestNewAPIKeysCopiesGroups(t *testing.T) {
	groups := []string{"demo"}
	keys, err := NewAPIKeys([]config.APIKey{{Name: "k", Hash: HashKey(aliceKey), Subject: "s", Groups: groups}})
	if err != nil {
		t.Fatal(err)
	}
	groups[0] = "admin"
	id, err := keys.Authenticate(request(map[string]string{"X-Api-Key": aliceKey}))
	if err != nil || id.Groups[0] != "demo" {
		t.Fatalf("groups = %v, %v; want [demo]", id, err)
	}
}

func TestNewAPIKeysBadHash(t *testing.T) {
	for _, hash := range []string{
		"",
		"sha256:",
		"sha256:abcd",
		"sha256:" + strings.Repeat("zz", 32),
		"sha256:" + strings.Repeat("ab", 33),
	} {
		_, err := NewAPIKeys([]config.APIKey{{Name: "broken", Hash: hash, Subject: "s"}})
		if err == nil || !strings.Contains(err.Error(), `"broken"`) {
			t.Errorf("NewAPIKeys(hash %q) error = %v; want one naming the key", hash, err)
		}
	}
}

func TestGenerateKey(t *testing.T) {
	seen := map[string]bool{}
	for range 20 {
		key, hash := GenerateKey()
		rest, ok := strings.CutPrefix(key, KeyPrefix)
		if !ok {
			t.Fatalf("key %q lacks the %q prefix", key, KeyPrefix)
		}
		raw, err := base64.RawURLEncoding.DecodeString(rest)
		if err != nil || len(raw) != 32 {
			t.Fatalf("key %q is not 32 bytes of unpadded base64url: %v", key, err)
		}
		if hash != HashKey(key) {
			t.Fatalf("GenerateKey hash %q != HashKey(key) %q", hash, HashKey(key))
		}
		if seen[key] {
			t.Fatalf("GenerateKey repeated %q", key)
		}
		seen[key] = true

		// The pair works end to end: config accepts the hash, and the
		// authenticator accepts the key.
		keys, err := NewAPIKeys([]config.APIKey{{Name: "gen", Hash: hash, Subject: "s"}})
		if err != nil {
			t.Fatal(err)
		}
		if id, err := keys.Authenticate(request(map[string]string{"Authorization": "Bearer " + key})); err != nil || id.Credential != "gen" {
			t.Fatalf("generated key not accepted: %v, %v", id, err)
		}
	}
}

func TestHashKey(t *testing.T) {
	// sha256("pcx_demo_not_a_secret"), the quickstart key's published hash.
	const want = "sha256:8f4a6b8e943170ef4a79e9076cc0217c43a7ca45f8cdc6f6de485a1f96a0acd4"
	if got := HashKey("pcx_demo_not_a_secret"); got != want {
		t.Errorf("HashKey = %q, want %q", got, want)
	}
	if HashKey("a") == HashKey("b") {
		t.Error("different keys hash alike")
	}
}

func TestBearerToken(t *testing.T) {
	tests := []struct {
		headers map[string]string
		want    string
	}{
		{map[string]string{"Authorization": "Bearer tok"}, "tok"},
		{map[string]string{"Authorization": "BEARER tok"}, "tok"},
		{map[string]string{"Authorization": "Bearer  tok  "}, "tok"},
		{map[string]string{"Authorization": "Token tok"}, ""},
		{map[string]string{"Authorization": "Bearertok"}, ""},
		{map[string]string{"X-Api-Key": " tok "}, "tok"},
		{map[string]string{"Authorization": "Bearer a", "X-Api-Key": "b"}, "a"},
		{nil, ""},
	}
	for _, tt := range tests {
		if got := BearerToken(request(tt.headers)); got != tt.want {
			t.Errorf("BearerToken(%v) = %q, want %q", tt.headers, got, tt.want)
		}
	}
}

// authFunc adapts a function to Authenticator and counts its calls.
type authFunc struct {
	fn    func(*http.Request) (*Identity, error)
	calls int
}

func (a *authFunc) Authenticate(r *http.Request) (*Identity, error) {
	a.calls++
	return a.fn(r)
}

func TestChain(t *testing.T) {
	errExpired := errors.New("token expired")
	none := func(*http.Request) (*Identity, error) { return nil, ErrNoCredential }
	accepts := func(sub string) func(*http.Request) (*Identity, error) {
		return func(*http.Request) (*Identity, error) { return &Identity{Subject: sub}, nil }
	}
	refuses := func(err error) func(*http.Request) (*Identity, error) {
		return func(*http.Request) (*Identity, error) { return nil, err }
	}
	bearer := map[string]string{"Authorization": "Bearer something"}
	tests := []struct {
		name        string
		chain       []func(*http.Request) (*Identity, error)
		headers     map[string]string
		wantSubject string
		wantErr     error
		wantCalls   []int
	}{
		{"first recognises", []func(*http.Request) (*Identity, error){accepts("a"), accepts("b")}, bearer, "a", nil, []int{1, 0}},
		{"skips no credential", []func(*http.Request) (*Identity, error){none, accepts("b")}, bearer, "b", nil, []int{1, 1}},
		{"refusal stops the chain", []func(*http.Request) (*Identity, error){refuses(errExpired), accepts("b")}, bearer, "", errExpired, []int{1, 0}},
		{"invalid stops the chain", []func(*http.Request) (*Identity, error){none, refuses(ErrInvalidCredential), accepts("c")}, bearer, "", ErrInvalidCredential, []int{1, 1, 0}},
		{"nobody recognises a presented token", []func(*http.Request) (*Identity, error){none, none}, bearer, "", ErrInvalidCredential, []int{1, 1}},
		{"nobody recognises x-api-key", []func(*http.Request) (*Identity, error){none}, map[string]string{"X-Api-Key": "k"}, "", ErrInvalidCredential, []int{1}},
		{"nothing presented", []func(*http.Request) (*Identity, error){none, none}, nil, "", ErrNoCredential, []int{1, 1}},
		{"empty chain with a token", nil, bearer, "", ErrInvalidCredential, nil},
		{"empty chain without a token", nil, nil, "", ErrNoCredential, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var chain Chain
			var fakes []*authFunc
			for _, fn := range tt.chain {
				a := &authFunc{fn: fn}
				fakes = append(fakes, a)
				chain = append(chain, a)
			}
			id, err := chain.Authenticate(request(tt.headers))
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) || id != nil {
					t.Fatalf("Authenticate = %+v, %v; want %v", id, err, tt.wantErr)
				}
			} else if err != nil || id == nil || id.Subject != tt.wantSubject {
				t.Fatalf("Authenticate = %+v, %v; want subject %q", id, err, tt.wantSubject)
			}
			for i, a := range fakes {
				if a.calls != tt.wantCalls[i] {
					t.Errorf("authenticator %d called %d times, want %d", i, a.calls, tt.wantCalls[i])
				}
			}
		})
	}
}

// With the real API-key authenticator in a chain, a JWT-shaped token falls
// through (for a JWT authenticator to take) and ends as invalid.
func TestChainWithAPIKeys(t *testing.T) {
	chain := Chain{testKeys(t)}
	if id, err := chain.Authenticate(request(map[string]string{"X-Api-Key": aliceKey})); err != nil || id.Subject != "alice" {
		t.Fatalf("valid key: %+v, %v", id, err)
	}
	if _, err := chain.Authenticate(request(map[string]string{"Authorization": "Bearer " + jwtish})); !errors.Is(err, ErrInvalidCredential) {
		t.Fatalf("unclaimed JWT: %v, want ErrInvalidCredential", err)
	}
	if _, err := chain.Authenticate(request(nil)); !errors.Is(err, ErrNoCredential) {
		t.Fatalf("no credential: %v, want ErrNoCredential", err)
	}
}
