package authn

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/hashicorp/golang-lru/v2/expirable"

	"portcullis/config"
)

// MaxTokenBytes is the largest bearer JWT accepted. Real service tokens are
// a few KiB; the limit keeps parsing and hashing bounded.
const MaxTokenBytes = 16 << 10

// JWTs authenticates bearer JWTs: those of the trusted issuers in the
// configuration and the gateway's own minted tokens. A token is matched to
// its issuer by its unverified iss claim and then verified in full against
// that issuer's keys, audiences and rules. Verified tokens are cached (by
// their SHA-256, never the token) until they expire, so a repeated call
// skips the signature check.
type JWTs struct {
	issuers map[string]*trustedIssuer
	cache   *verifiedCache
	now     func() time.Time
}

var _ Authenticator = (*JWTs)(nil)

// JWTOptions tunes NewJWTs. The zero value works.
type JWTOptions struct {
	// HTTPClient fetches discovery documents and key sets. Zero value: a
	// client with a 10s timeout.
	HTTPClient *http.Client
	// OnKeyError is told when an issuer's keys could not be fetched, with
	// the number of failed fetches of that issuer so far; the cached keys,
	// if any, stay in use. It must not block.
	OnKeyError func(issuer string, failures int64, err error)
	// CacheSize bounds the number of verified tokens kept. Zero value: 10000.
	CacheSize int
	// Minted verifies the gateway's own tokens. Zero value: none accepted.
	Minted *Minter
	// Now is the clock. Zero value: time.Now.
	Now func() time.Time
}

// trustedIssuer is everything needed to verify one issuer's tokens.
type trustedIssuer struct {
	name     string
	iss      string
	keys     keySource
	algs     []string
	parser   *jwt.Parser
	required map[string]string
	// identity maps verified claims to the caller.
	identity func(claims jwt.MapClaims) (*Identity, error)
	// replay, when on, remembers the jti of every accepted token.
	replay *replayGuard
	// revoked, for minted tokens, reports a revoked jti.
	revoked func(jti string) bool
}

// keySource gives the keys that may verify a token with kid and alg.
type keySource interface {
	keysFor(ctx context.Context, kid, alg string) ([]*publicKey, error)
}

type staticKeys struct{ set *keySet }

func (s staticKeys) keysFor(_ context.Context, kid, alg string) ([]*publicKey, error) {
	return s.set.lookup(kid, alg), nil
}

// NewJWTs builds the authenticator for the configured issuers. Issuers
// whose keys are fetched get a first fetch now; a failure is reported
// through o.OnKeyError and retried when a token arrives, so an IdP that is
// down does not stop the gateway from starting.
func NewJWTs(ctx context.Context, issuers []config.Issuer, o JWTOptions) (*JWTs, error) {
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: fetchTimeout}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.CacheSize <= 0 {
		o.CacheSize = 10000
	}
	j := &JWTs{issuers: map[string]*trustedIssuer{}, now: o.Now, cache: newVerifiedCache(o.CacheSize)}
	clock := func() time.Time { return j.now() }
	var remotes []*remoteKeys
	for _, ic := range issuers {
		ti := &trustedIssuer{
			name:     ic.Name,
			iss:      ic.Issuer,
			algs:     ic.Algorithms,
			required: ic.RequiredClaims,
			identity: claimMapper(ic),
		}
		opts := []jwt.ParserOption{
			jwt.WithValidMethods(ic.Algorithms),
			jwt.WithIssuer(ic.Issuer),
			jwt.WithAudience(ic.Audiences...),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
			jwt.WithLeeway(ic.Leeway.Std()),
			jwt.WithTimeFunc(clock),
		}
		ti.parser = jwt.NewParser(opts...)
		if ic.ReplayProtection {
			ti.replay = newReplayGuard()
		}
		switch {
		case ic.KeysFile != "":
			src, err := os.ReadFile(ic.KeysFile)
			if err != nil {
				return nil, fmt.Errorf("issuer %s: read keys: %w", ic.Name, err)
			}
			ks, err := parseStaticKeys(src)
			if err != nil {
				return nil, fmt.Errorf("issuer %s: keys_file %s: %w", ic.Name, ic.KeysFile, err)
			}
			ti.keys = staticKeys{ks}
		default:
			name := ic.Name
			r := &remoteKeys{issuer: ic.Issuer, jwksURL: ic.JWKSURL, client: o.HTTPClient, every: ic.RefreshInterval.Std()}
			if o.OnKeyError != nil {
				r.onError = func(err error) { o.OnKeyError(name, r.failures.Load(), err) }
			}
			ti.keys = r
			remotes = append(remotes, r)
		}
		j.issuers[ic.Issuer] = ti
	}
	if m := o.Minted; m != nil {
		if _, dup := j.issuers[m.issuer]; dup {
			return nil, fmt.Errorf("minted tokens' issuer %q is also a trusted issuer", m.issuer)
		}
		j.issuers[m.issuer] = m.trustedIssuer(clock)
	}
	var wg sync.WaitGroup
	for _, r := range remotes {
		wg.Go(func() {
			r.mu.Lock()
			r.lastFetch = time.Now()
			r.mu.Unlock()
			_ = r.refresh(ctx)
		})
	}
	wg.Wait()
	return j, nil
}

// Authenticate implements Authenticator. A bearer credential that is not
// shaped like a JWT is not this authenticator's.
func (j *JWTs) Authenticate(r *http.Request) (*Identity, error) {
	token := BearerToken(r)
	if token == "" || !looksLikeJWT(token) {
		return nil, ErrNoCredential
	}
	return j.Verify(r.Context(), token)
}

// Verify checks a JWT and returns the identity it carries. A refused token
// gives a *Refusal, whose reason is safe to show the client.
func (j *JWTs) Verify(ctx context.Context, token string) (*Identity, error) {
	if len(token) > MaxTokenBytes {
		return nil, refuse("the token is %d bytes; the limit is %d", len(token), MaxTokenBytes)
	}
	now := j.now()
	sum := sha256.Sum256([]byte(token))
	if e, ok := j.cache.get(sum, now); ok {
		if e.issuer.revoked != nil && e.issuer.revoked(e.jti) {
			return nil, refuse("the token was revoked")
		}
		return e.identity.clone(), nil
	}

	iss, err := unverifiedIssuer(token)
	if err != nil {
		return nil, err
	}
	ti, ok := j.issuers[iss]
	if !ok {
		return nil, refuse("the token's issuer %s is not trusted by this gateway", quoteSafe(iss))
	}
	claims := jwt.MapClaims{}
	var keyErr error
	_, err = ti.parser.ParseWithClaims(token, claims, func(t *jwt.Token) (any, error) {
		keyErr = nil
		alg, _ := t.Header["alg"].(string)
		kid, _ := t.Header["kid"].(string)
		keys, err := ti.keys.keysFor(ctx, kid, alg)
		if err != nil {
			keyErr = err
			return nil, err
		}
		if len(keys) == 0 {
			keyErr = refuse("no key of issuer %s matches the token's kid %s and algorithm %s", ti.name, quoteSafe(kid), quoteSafe(alg))
			return nil, keyErr
		}
		vks := jwt.VerificationKeySet{}
		for _, k := range keys {
			vks.Keys = append(vks.Keys, k.key)
		}
		return vks, nil
	})
	if err != nil {
		return nil, ti.explain(err, keyErr, claims)
	}
	for name, want := range ti.required {
		if !claimHas(claims[name], want) {
			return nil, refuse("the token's %s claim does not have the value this gateway requires", quoteSafe(name))
		}
	}
	jti, _ := claims["jti"].(string)
	if ti.revoked != nil && ti.revoked(jti) {
		return nil, refuse("the token was revoked")
	}
	exp, err := claims.GetExpirationTime()
	if err != nil || exp == nil {
		return nil, refuse("the token has no valid exp claim")
	}
	if ti.replay != nil {
		if jti == "" {
			return nil, refuse("the token has no jti claim, which replay protection requires")
		}
		if exp.Sub(now) > replayWindow {
			return nil, refuse("the token lives longer than %s, too long for replay protection", replayWindow)
		}
		if !ti.replay.firstUse(ti.iss+"\x00"+jti, exp.Time) {
			return nil, refuse("the token was already used (replayed jti)")
		}
	}
	id, err := ti.identity(claims)
	if err != nil {
		return nil, err
	}
	if ti.replay == nil {
		// A replay-protected token is good once, so it is never cached.
		j.cache.put(sum, &verified{identity: id, exp: exp.Time, issuer: ti, jti: jti}, now)
	}
	return id.clone(), nil
}

// explain turns a verification error into a refusal with a clear reason.
func (ti *trustedIssuer) explain(err, keyErr error, claims jwt.MapClaims) error {
	var ref *Refusal
	switch {
	case errors.As(keyErr, &ref):
		return ref
	case errors.Is(keyErr, errKeysUnavailable):
		return refuse("the keys of issuer %s cannot be fetched right now; try again shortly", ti.name)
	case errors.Is(err, jwt.ErrTokenMalformed):
		return refuse("the token is malformed")
	case errors.Is(err, jwt.ErrTokenSignatureInvalid) && strings.Contains(err.Error(), "signing method"):
		return refuse("the token's algorithm is not accepted for issuer %s; accepted: %s", ti.name, strings.Join(ti.algs, ", "))
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		return refuse("the token's signature is invalid")
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing) && strings.Contains(err.Error(), "exp"):
		return refuse("the token has no exp claim")
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing) && strings.Contains(err.Error(), "aud"):
		return refuse("the token has no aud claim; it must name this gateway's audience")
	case errors.Is(err, jwt.ErrTokenExpired):
		if exp, e := claims.GetExpirationTime(); e == nil && exp != nil {
			return refuse("the token expired at %s", exp.UTC().Format(time.RFC3339))
		}
		return refuse("the token expired")
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return refuse("the token is not valid yet (nbf is in the future)")
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return refuse("the token's iat is in the future")
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return refuse("the token's audience is not one this gateway accepts for issuer %s", ti.name)
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return refuse("the token's issuer does not match")
	case errors.Is(err, jwt.ErrInvalidType), errors.Is(err, jwt.ErrTokenInvalidClaims):
		return refuse("the token's claims are invalid")
	}
	return refuse("the token was not accepted")
}

// unverifiedIssuer reads the iss claim of a token that has not been
// verified yet, only to choose which issuer verifies it.
func unverifiedIssuer(token string) (string, error) {
	_, rest, _ := strings.Cut(token, ".")
	payload, _, ok := strings.Cut(rest, ".")
	if !ok {
		return "", refuse("the token is malformed")
	}
	raw, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return "", refuse("the token is malformed")
	}
	var c struct {
		Iss any `json:"iss"`
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return "", refuse("the token is malformed")
	}
	iss, ok := c.Iss.(string)
	if !ok || iss == "" {
		return "", refuse("the token has no iss claim")
	}
	return iss, nil
}

// claimMapper reads an identity from verified claims per the issuer's
// claim mapping.
func claimMapper(ic config.Issuer) func(jwt.MapClaims) (*Identity, error) {
	m := ic.Claims
	prefix := ic.Issuer + "#"
	if m.SubjectPrefix != nil {
		prefix = *m.SubjectPrefix
	}
	return func(claims jwt.MapClaims) (*Identity, error) {
		sub, _ := claims[orDefault(m.Subject, "sub")].(string)
		if sub == "" {
			return nil, refuse("the token has no %s claim to name the caller", quoteSafe(orDefault(m.Subject, "sub")))
		}
		id := &Identity{
			Type:       TypeService,
			Subject:    prefix + sub,
			Email:      stringClaim(claims[orDefault(m.Email, "email")]),
			Name:       stringClaim(claims[orDefault(m.Name, "name")]),
			Groups:     listClaim(claims[orDefault(m.Groups, "groups")]),
			Roles:      listClaim(claims[orDefault(m.Roles, "roles")]),
			Issuer:     ic.Issuer,
			Credential: "jwt:" + ic.Name,
			Claims:     claims,
		}
		scopes := claims[m.Scopes]
		if m.Scopes == "" {
			scopes = claims["scope"]
			if scopes == nil {
				scopes = claims["scp"]
			}
		}
		for _, s := range listClaim(scopes) {
			id.Roles = append(id.Roles, "scope:"+s)
		}
		return id, nil
	}
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func stringClaim(v any) string {
	s, _ := v.(string)
	return s
}

// listClaim reads a claim that is a list of strings or a space-separated
// string (as OAuth's scope is).
func listClaim(v any) []string {
	switch v := v.(type) {
	case string:
		return strings.Fields(v)
	case []any:
		out := make([]string, 0, len(v))
		for _, e := range v {
			if s, ok := e.(string); ok && s != "" {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// claimHas reports whether a claim has the required value: equal to a
// string claim, contained in a list claim, or, for "*", present at all.
func claimHas(v any, want string) bool {
	if v == nil {
		return false
	}
	if want == "*" {
		return true
	}
	switch v := v.(type) {
	case string:
		return v == want
	case []any:
		return slices.ContainsFunc(v, func(e any) bool { s, ok := e.(string); return ok && s == want })
	case bool:
		return fmt.Sprint(v) == want
	case float64:
		return fmt.Sprint(v) == want
	}
	return false
}

// quoteSafe quotes a value from a token for an error description: only
// printable ASCII without quotes or backslashes, and at most 80 bytes, so
// that nothing a client sent can break the WWW-Authenticate header.
func quoteSafe(s string) string {
	var b strings.Builder
	b.WriteByte('\'')
	for i := 0; i < len(s) && b.Len() < 81; i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '\'' {
			c = '?'
		}
		b.WriteByte(c)
	}
	if len(s) > 80 {
		b.WriteString("...")
	}
	b.WriteByte('\'')
	return b.String()
}

// replayGuard remembers token ids until their tokens expire.
type replayGuard struct {
	mu   sync.Mutex
	seen *expirable.LRU[string, time.Time]
}

// replayWindow is how long a jti is remembered at most; a replay-protected
// token that lives longer is refused, since it could be replayed after.
const replayWindow = time.Hour

func newReplayGuard() *replayGuard {
	return &replayGuard{seen: expirable.NewLRU[string, time.Time](100_000, nil, replayWindow)}
}

// firstUse records the key and reports whether it was new.
func (g *replayGuard) firstUse(key string, exp time.Time) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.seen.Get(key); ok {
		return false
	}
	g.seen.Add(key, exp)
	return true
}

// Refusal is a credential that was presented and refused. Its Reason is
// meant for the client: it says what is wrong without revealing secrets.
type Refusal struct {
	Reason string
}

func (r *Refusal) Error() string { return "invalid credential: " + r.Reason }

// Is makes every refusal match ErrInvalidCredential.
func (r *Refusal) Is(target error) bool { return target == ErrInvalidCredential }

func refuse(format string, args ...any) *Refusal {
	return &Refusal{Reason: fmt.Sprintf(format, args...)}
}

// clone copies an identity so a caller cannot change a cached one. Claims
// are shared: nothing in the gateway writes to them.
func (id *Identity) clone() *Identity {
	c := *id
	c.Groups = slices.Clone(id.Groups)
	c.Roles = slices.Clone(id.Roles)
	return &c
}
