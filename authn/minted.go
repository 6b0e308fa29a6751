package authn

import (
	"bufio"
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"portcullis/config"
)

// Minter signs the gateway's own short-lived tokens, publishes their public
// keys, and verifies them (through JWTs) with revocation by jti.
type Minter struct {
	issuer      string
	audience    string
	defaultLife time.Duration
	maxLife     time.Duration
	signer      crypto.Signer
	method      jwt.SigningMethod
	kid         string
	keys        *keySet
	jwks        []byte

	revokedFile string
	revoked     atomic.Pointer[map[string]bool]
	revokedStat atomic.Pointer[fileStamp]
}

// fileStamp tells whether a file changed since it was last read.
type fileStamp struct {
	mod  time.Time
	size int64
}

// maxKeysKept is how many signing keys a key file keeps after a rotation:
// the current one and the previous ones, whose tokens stay valid until
// they expire.
const maxKeysKept = 3

// mintedLeeway is the clock skew allowed on minted tokens; the gateway's
// replicas share a clock source.
const mintedLeeway = 5 * time.Second

// NewMinter loads the signing keys from c.SigningKeyFile, creating the file
// with a new key when it does not exist, and reads the revocation list.
func NewMinter(c config.Tokens) (*Minter, error) {
	if c.SigningKeyFile == "" {
		return nil, errors.New("identity.tokens.signing_key_file is not set")
	}
	signers, err := loadOrCreateKeyFile(c.SigningKeyFile, c.Algorithm)
	if err != nil {
		return nil, err
	}
	m := &Minter{
		issuer:      c.Issuer,
		audience:    c.Audience,
		defaultLife: c.DefaultLifetime.Std(),
		maxLife:     c.MaxLifetime.Std(),
		revokedFile: c.RevokedFile,
		keys:        &keySet{byKid: map[string]*publicKey{}},
	}
	var jwks struct {
		Keys []map[string]string `json:"keys"`
	}
	for i, s := range signers {
		jwk, alg, err := publicJWK(s.Public())
		if err != nil {
			return nil, fmt.Errorf("%s: key %d: %w", c.SigningKeyFile, i+1, err)
		}
		kid := jwk["kid"]
		if i == 0 {
			m.signer, m.kid = s, kid
			m.method = jwt.GetSigningMethod(alg)
		}
		m.keys.byKid[kid] = &publicKey{kid: kid, alg: alg, key: s.Public()}
		jwks.Keys = append(jwks.Keys, jwk)
	}
	m.jwks, _ = json.Marshal(jwks)
	empty := map[string]bool{}
	m.revoked.Store(&empty)
	if err := m.ReloadRevoked(); err != nil {
		return nil, err
	}
	return m, nil
}

// Issuer is the iss claim of minted tokens.
func (m *Minter) Issuer() string { return m.issuer }

// JWKS returns the public keys of minted tokens as a JWK Set document.
func (m *Minter) JWKS() []byte { return m.jwks }

// MaxLifetime is the longest lifetime a minted token may have.
func (m *Minter) MaxLifetime() time.Duration { return m.maxLife }

// Minted is a token the gateway signed.
type Minted struct {
	Token   string
	ID      string // the jti, by which it can be revoked
	Expires time.Time
}

// Mint signs a token for the identity. A zero lifetime means the default;
// a longer one than the maximum is an error, and the token never outlives
// the credential it was minted with. models, when given, narrows the token
// to those model names; a caller already narrowed cannot widen its scope.
func (m *Minter) Mint(id *Identity, lifetime time.Duration, models []string, now time.Time) (*Minted, error) {
	if lifetime == 0 {
		lifetime = m.defaultLife
	}
	if lifetime < 0 || lifetime > m.maxLife {
		return nil, fmt.Errorf("a lifetime of %s is not allowed; ask for at most %s", lifetime, m.maxLife)
	}
	exp := now.Add(lifetime)
	if parent, ok := id.Claims["exp"].(float64); ok {
		if pexp := time.Unix(int64(parent), 0); pexp.Before(exp) {
			exp = pexp
		}
	}
	if scope := listClaim(id.Claims["models"]); id.Claims["models"] != nil {
		if models == nil {
			models = scope
		}
		for _, mdl := range models {
			if !slices.Contains(scope, mdl) {
				return nil, fmt.Errorf("model %q is outside your credential's model scope", mdl)
			}
		}
	}
	var raw [16]byte
	rand.Read(raw[:])
	jti := hex.EncodeToString(raw[:])
	claims := jwt.MapClaims{
		"iss":  m.issuer,
		"aud":  m.audience,
		"sub":  id.Subject,
		"iat":  now.Unix(),
		"nbf":  now.Unix(),
		"exp":  exp.Unix(),
		"jti":  jti,
		"ptyp": string(id.Type),
	}
	if len(id.Groups) > 0 {
		claims["groups"] = id.Groups
	}
	if len(id.Roles) > 0 {
		claims["roles"] = id.Roles
	}
	if id.Email != "" {
		claims["email"] = id.Email
	}
	if id.Name != "" {
		claims["name"] = id.Name
	}
	if id.Issuer != "" {
		claims["src_iss"] = id.Issuer
	}
	if models != nil {
		claims["models"] = models
	}
	t := jwt.NewWithClaims(m.method, claims)
	t.Header["kid"] = m.kid
	signed, err := t.SignedString(m.signer)
	if err != nil {
		return nil, fmt.Errorf("sign token: %w", err)
	}
	return &Minted{Token: signed, ID: jti, Expires: time.Unix(exp.Unix(), 0)}, nil
}

// trustedIssuer verifies minted tokens.
func (m *Minter) trustedIssuer(now func() time.Time) *trustedIssuer {
	algs := []string{}
	for _, k := range m.keys.byKid {
		if !slices.Contains(algs, k.alg) {
			algs = append(algs, k.alg)
		}
	}
	return &trustedIssuer{
		name: "portcullis (minted)",
		iss:  m.issuer,
		keys: staticKeys{m.keys},
		algs: algs,
		parser: jwt.NewParser(
			jwt.WithValidMethods(algs),
			jwt.WithIssuer(m.issuer),
			jwt.WithAudience(m.audience),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
			jwt.WithLeeway(mintedLeeway),
			jwt.WithTimeFunc(now),
		),
		identity: func(claims jwt.MapClaims) (*Identity, error) {
			sub, _ := claims["sub"].(string)
			jti, _ := claims["jti"].(string)
			if sub == "" || jti == "" {
				return nil, refuse("the token has no sub or jti claim")
			}
			typ := Type(stringClaim(claims["ptyp"]))
			if !slices.Contains([]Type{TypeUser, TypeService, TypeAPIKey}, typ) {
				typ = TypeService
			}
			return &Identity{
				Type:       typ,
				Subject:    sub,
				Email:      stringClaim(claims["email"]),
				Name:       stringClaim(claims["name"]),
				Groups:     listClaim(claims["groups"]),
				Roles:      listClaim(claims["roles"]),
				Issuer:     m.issuer,
				Credential: "minted:" + jti,
				Claims:     claims,
			}, nil
		},
		revoked: m.isRevoked,
	}
}

func (m *Minter) isRevoked(jti string) bool {
	return (*m.revoked.Load())[jti]
}

// ReloadRevoked re-reads the revocation list if it changed. A missing file
// is an empty list.
func (m *Minter) ReloadRevoked() error {
	if m.revokedFile == "" {
		return nil
	}
	fi, err := os.Stat(m.revokedFile)
	if errors.Is(err, fs.ErrNotExist) {
		empty := map[string]bool{}
		m.revoked.Store(&empty)
		m.revokedStat.Store(nil)
		return nil
	}
	if err != nil {
		return fmt.Errorf("revoked tokens: %w", err)
	}
	stamp := &fileStamp{mod: fi.ModTime(), size: fi.Size()}
	if old := m.revokedStat.Load(); old != nil && *old == *stamp {
		return nil
	}
	src, err := os.ReadFile(m.revokedFile)
	if err != nil {
		return fmt.Errorf("revoked tokens: %w", err)
	}
	set := ParseRevoked(src)
	m.revoked.Store(&set)
	m.revokedStat.Store(stamp)
	return nil
}

// WatchRevoked re-reads the revocation list every interval until ctx ends,
// reporting failures to onError (the previous list stays in force).
func (m *Minter) WatchRevoked(ctx context.Context, every time.Duration, onError func(error)) {
	if m.revokedFile == "" {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := m.ReloadRevoked(); err != nil && onError != nil {
				onError(err)
			}
		}
	}
}

// ParseRevoked reads a revocation list: one jti a line; blank lines and
// text after # are ignored.
func ParseRevoked(src []byte) map[string]bool {
	set := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(src))
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		if line = strings.TrimSpace(line); line != "" {
			set[line] = true
		}
	}
	return set
}

// loadOrCreateKeyFile reads the PKCS #8 private keys of a key file, or
// creates the file (mode 0600) with one new key of the given algorithm.
func loadOrCreateKeyFile(path, alg string) ([]crypto.Signer, error) {
	src, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		if err := RotateKeyFile(path, alg); err != nil {
			return nil, err
		}
		src, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, fmt.Errorf("token signing key: %w", err)
	}
	signers, err := parsePrivateKeys(src)
	if err != nil {
		return nil, fmt.Errorf("token signing key %s: %w", path, err)
	}
	return signers, nil
}

func parsePrivateKeys(src []byte) ([]crypto.Signer, error) {
	var out []crypto.Signer
	for {
		var block *pem.Block
		block, src = pem.Decode(src)
		if block == nil {
			break
		}
		if block.Type != "PRIVATE KEY" {
			return nil, fmt.Errorf("PEM block %q is not a PKCS #8 PRIVATE KEY", block.Type)
		}
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, err
		}
		switch k := k.(type) {
		case *ecdsa.PrivateKey:
			if k.Curve != elliptic.P256() {
				return nil, errors.New("an ECDSA key must be on P-256 (ES256)")
			}
			out = append(out, k)
		case ed25519.PrivateKey:
			out = append(out, k)
		default:
			return nil, fmt.Errorf("key of type %T is not supported; use ES256 or EdDSA", k)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no PEM private key found")
	}
	return out, nil
}

// RotateKeyFile puts a new signing key of the algorithm (ES256 or EdDSA) at
// the head of the key file, keeping the previous keys (up to maxKeysKept in
// all) so tokens they signed stay valid until they expire. The file is
// written atomically with mode 0600; it is created if absent. The gateway
// reads the file at start, so a rotation takes effect on restart.
func RotateKeyFile(path, alg string) error {
	var key crypto.Signer
	var err error
	switch alg {
	case "ES256", "":
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "EdDSA":
		_, key, err = ed25519.GenerateKey(rand.Reader)
	default:
		return fmt.Errorf("algorithm %q is not supported; use ES256 or EdDSA", alg)
	}
	if err != nil {
		return err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	pem.Encode(&buf, &pem.Block{Type: "PRIVATE KEY", Bytes: der})
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	rest := old
	for kept := 1; kept < maxKeysKept; kept++ {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		pem.Encode(&buf, block)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".signing-key-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(buf.Bytes()); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// publicJWK describes a public key as a JWK with its RFC 7638 thumbprint
// as kid, and returns its algorithm.
func publicJWK(pub crypto.PublicKey) (map[string]string, string, error) {
	b64 := base64.RawURLEncoding.EncodeToString
	var jwk map[string]string
	var alg, thumb string
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		raw, err := k.Bytes()
		if err != nil {
			return nil, "", err
		}
		x, y := b64(raw[1:33]), b64(raw[33:])
		alg = "ES256"
		jwk = map[string]string{"kty": "EC", "crv": "P-256", "x": x, "y": y}
		thumb = `{"crv":"P-256","kty":"EC","x":"` + x + `","y":"` + y + `"}`
	case ed25519.PublicKey:
		x := b64(k)
		alg = "EdDSA"
		jwk = map[string]string{"kty": "OKP", "crv": "Ed25519", "x": x}
		thumb = `{"crv":"Ed25519","kty":"OKP","x":"` + x + `"}`
	default:
		return nil, "", fmt.Errorf("key of type %T is not supported", pub)
	}
	sum := sha256.Sum256([]byte(thumb))
	jwk["kid"] = b64(sum[:])
	jwk["alg"] = alg
	jwk["use"] = "sig"
	return jwk, alg, nil
}
