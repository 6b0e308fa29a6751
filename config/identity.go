package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Identity declares the JWTs the gateway accepts besides API keys: tokens of
// trusted issuers (an IdP's client-credentials tokens, Kubernetes
// service-account tokens, GitHub Actions OIDC tokens) and tokens the gateway
// mints itself.
type Identity struct {
	// Issuers are the identity providers whose tokens are accepted.
	Issuers []Issuer `yaml:"issuers"`
	// Tokens configures gateway-minted tokens. Zero value: minting is off.
	Tokens Tokens `yaml:"tokens"`
	// APIKeysFile is a YAML file of further API keys (as `portcullis keys`
	// writes it), re-read when it changes, so that a revoked key is refused
	// without a restart. Zero value: only auth.api_keys.
	APIKeysFile string `yaml:"api_keys_file"`
}

// Issuer is one trusted token issuer.
type Issuer struct {
	// Name identifies the issuer in logs and audit records. Zero value: the
	// issuer URL.
	Name string `yaml:"name"`
	// Issuer is the exact value of the tokens' iss claim, usually an https URL.
	Issuer string `yaml:"issuer"`
	// Audiences lists the accepted values of the aud claim; a token must
	// carry at least one of them. Required: a token meant for another
	// service must not be usable here.
	Audiences []string `yaml:"audiences"`
	// JWKSURL is where the issuer's public keys are fetched. Zero value: the
	// jwks_uri of the issuer's OIDC discovery document
	// (<issuer>/.well-known/openid-configuration), unless KeysFile is set.
	JWKSURL string `yaml:"jwks_url"`
	// KeysFile holds the issuer's public keys for air-gapped setups: a JWKS
	// (JSON) or PEM public keys. When set, nothing is fetched.
	KeysFile string `yaml:"keys_file"`
	// Algorithms are the accepted signature algorithms. Zero value: RS256,
	// ES256 and EdDSA. Only asymmetric algorithms exist here.
	Algorithms []string `yaml:"algorithms"`
	// Leeway is the clock skew allowed on exp, nbf and iat. Zero value: 30s.
	Leeway Duration `yaml:"leeway"`
	// RequiredClaims are top-level claims a token must carry with the given
	// value (a string claim equal to it, or a list claim containing it);
	// "*" only asks that the claim be present.
	RequiredClaims map[string]string `yaml:"required_claims"`
	// Claims maps the token's claims onto the caller's identity.
	Claims ClaimMapping `yaml:"claims"`
	// RefreshInterval is the least time between two fetches of the keys
	// caused by a token whose kid is unknown, so unknown kids cannot load
	// the IdP. Zero value: 30s.
	RefreshInterval Duration `yaml:"refresh_interval"`
	// ReplayProtection refuses a token whose jti was already seen (and one
	// without a jti). For one-time tokens; most service tokens are reused
	// until they expire and must leave it off.
	ReplayProtection bool `yaml:"replay_protection"`
}

// ClaimMapping names the claims the identity is read from.
type ClaimMapping struct {
	// Subject is the claim holding the caller's id. Zero value: sub.
	Subject string `yaml:"subject"`
	// SubjectPrefix is put before the subject claim's value to make the
	// identity's subject. Zero value: the issuer followed by "#", so two
	// issuers can never name the same principal; write "" to use the claim
	// as it is.
	SubjectPrefix *string `yaml:"subject_prefix"`
	// Groups is the claim holding the caller's groups (a list or a
	// space-separated string). Zero value: groups.
	Groups string `yaml:"groups"`
	// Roles is the claim holding the caller's roles. Zero value: roles.
	Roles string `yaml:"roles"`
	// Scopes is the claim holding the token's scopes, which become
	// identity roles prefixed "scope:". Zero value: scope, then scp.
	Scopes string `yaml:"scopes"`
	// Name is the claim holding a display name. Zero value: name.
	Name string `yaml:"name"`
	// Email is the claim holding an email address. Zero value: email.
	Email string `yaml:"email"`
}

// Tokens configures the tokens the gateway signs itself.
type Tokens struct {
	// SigningKeyFile holds the gateway's private signing keys (PEM, PKCS #8),
	// the first one signing and the others kept to verify tokens signed
	// before a rotation. It is created with a new key on first start when
	// absent. Zero value: minting is off.
	SigningKeyFile string `yaml:"signing_key_file"`
	// Algorithm is ES256 or EdDSA, used for newly generated keys. Zero
	// value: ES256.
	Algorithm string `yaml:"algorithm"`
	// Issuer is the iss claim of minted tokens. Zero value: portcullis.
	Issuer string `yaml:"issuer"`
	// Audience is the aud claim of minted tokens. Zero value: portcullis.
	Audience string `yaml:"audience"`
	// DefaultLifetime is a minted token's lifetime when the caller asks for
	// none. Zero value: 15m.
	DefaultLifetime Duration `yaml:"default_lifetime"`
	// MaxLifetime is the longest lifetime a caller may ask for. Zero value: 1h.
	MaxLifetime Duration `yaml:"max_lifetime"`
	// RevokedFile lists revoked token ids (jti), one a line; it is re-read
	// when it changes. Zero value: no revocation list.
	RevokedFile string `yaml:"revoked_file"`
}

// Defaults for Identity.
const (
	DefaultLeeway          = 30 * time.Second
	DefaultRefreshInterval = 30 * time.Second
	DefaultTokenLifetime   = 15 * time.Minute
	DefaultMaxTokenLife    = time.Hour
	DefaultTokenIssuer     = "portcullis"
	DefaultTokenAudience   = "portcullis"
	DefaultTokenAlgorithm  = "ES256"
)

// JWTAlgorithms are the signature algorithms an issuer may allow; HMAC and
// none are absent on purpose.
var JWTAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// DefaultJWTAlgorithms are allowed when an issuer lists none.
var DefaultJWTAlgorithms = []string{"RS256", "ES256", "EdDSA"}

// applyIdentityDefaults fills the identity section's zero values.
func (c *Config) applyIdentityDefaults() {
	for i := range c.Identity.Issuers {
		is := &c.Identity.Issuers[i]
		if is.Name == "" {
			is.Name = is.Issuer
		}
		if len(is.Algorithms) == 0 {
			is.Algorithms = slices.Clone(DefaultJWTAlgorithms)
		}
		if is.Leeway == 0 {
			is.Leeway = Duration(DefaultLeeway)
		}
		if is.RefreshInterval == 0 {
			is.RefreshInterval = Duration(DefaultRefreshInterval)
		}
		m := &is.Claims
		if m.Subject == "" {
			m.Subject = "sub"
		}
		if m.SubjectPrefix == nil {
			p := is.Issuer + "#"
			m.SubjectPrefix = &p
		}
		if m.Groups == "" {
			m.Groups = "groups"
		}
		if m.Roles == "" {
			m.Roles = "roles"
		}
		if m.Name == "" {
			m.Name = "name"
		}
		if m.Email == "" {
			m.Email = "email"
		}
	}
	t := &c.Identity.Tokens
	if t.Algorithm == "" {
		t.Algorithm = DefaultTokenAlgorithm
	}
	if t.Issuer == "" {
		t.Issuer = DefaultTokenIssuer
	}
	if t.Audience == "" {
		t.Audience = DefaultTokenAudience
	}
	if t.DefaultLifetime == 0 {
		t.DefaultLifetime = Duration(DefaultTokenLifetime)
	}
	if t.MaxLifetime == 0 {
		t.MaxLifetime = Duration(DefaultMaxTokenLife)
	}
}

// validateIdentity fills the identity section's defaults, checks it and
// resolves its paths; validate calls it.
func (c *Config) validateIdentity(l *loader) {
	c.applyIdentityDefaults()
	c.resolveIdentityPaths()
	seen := map[string]bool{}
	for i, is := range c.Identity.Issuers {
		path := fmt.Sprintf("identity.issuers[%d]", i)
		switch {
		case is.Issuer == "":
			l.fail(path+".issuer", "is required; write the exact iss claim of the tokens, for example https://token.actions.githubusercontent.com")
		case seen[is.Issuer]:
			l.fail(path+".issuer", "%q is declared twice; each issuer must appear once", is.Issuer)
		case is.Issuer == c.Identity.Tokens.Issuer && c.Identity.Tokens.SigningKeyFile != "":
			l.fail(path+".issuer", "%q is also the issuer of gateway-minted tokens (identity.tokens.issuer); give them different values", is.Issuer)
		}
		seen[is.Issuer] = true
		if len(is.Audiences) == 0 || slices.Contains(is.Audiences, "") {
			l.fail(path+".audiences", "is required: list the aud values meant for this gateway, for example [portcullis]; without one, a token issued to any other service would be accepted")
		}
		if is.KeysFile == "" {
			keysURL, what := is.JWKSURL, "jwks_url"
			if keysURL == "" {
				keysURL, what = is.Issuer, "issuer"
			}
			if u, err := url.Parse(keysURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
				l.fail(path+"."+what, "%q is not an http(s) URL, so the keys cannot be fetched; set jwks_url, or keys_file for static keys", keysURL)
			}
		} else if is.JWKSURL != "" {
			l.fail(path+".keys_file", "is set together with jwks_url; use one key source")
		}
		for j, a := range is.Algorithms {
			if !slices.Contains(JWTAlgorithms, a) {
				l.fail(fmt.Sprintf("%s.algorithms[%d]", path, j), "%q is not allowed; use asymmetric algorithms among %s (HMAC and none are never accepted)", a, strings.Join(JWTAlgorithms, ", "))
			}
		}
		if is.Leeway < 0 || is.Leeway.Std() > 5*time.Minute {
			l.fail(path+".leeway", "must be between 0s and 5m; a few seconds to a minute covers clock skew")
		}
		if is.RefreshInterval < 0 {
			l.fail(path+".refresh_interval", "must not be negative; write it like 30s")
		}
		for name, v := range is.RequiredClaims {
			if name == "" || v == "" {
				l.fail(path+".required_claims", "needs a claim name and a value for each entry (\"*\" for any value)")
			}
		}
	}
	t := c.Identity.Tokens
	if !slices.Contains([]string{"ES256", "EdDSA"}, t.Algorithm) {
		l.fail("identity.tokens.algorithm", "%q is not supported; use ES256 or EdDSA", t.Algorithm)
	}
	if t.DefaultLifetime < 0 || t.MaxLifetime < 0 {
		l.fail("identity.tokens", "lifetimes must not be negative; write them like 15m or 1h")
	} else if t.DefaultLifetime > t.MaxLifetime {
		l.fail("identity.tokens.default_lifetime", "%s is longer than max_lifetime %s", t.DefaultLifetime.Std(), t.MaxLifetime.Std())
	}
	if t.MaxLifetime.Std() > 24*time.Hour {
		l.fail("identity.tokens.max_lifetime", "%s is over 24h; minted tokens are meant to be short-lived", t.MaxLifetime.Std())
	}
	for i, k := range c.Auth.APIKeys {
		if k.Expires != "" {
			if _, err := time.Parse(time.RFC3339, k.Expires); err != nil {
				l.fail(fmt.Sprintf("auth.api_keys[%d].expires", i), "%q is not an RFC 3339 time; write it like 2026-12-31T23:59:59Z", k.Expires)
			}
		}
	}
}

// resolveIdentityPaths makes the identity section's file paths relative to
// the config file's folder, as resolvePaths does for the others.
func (c *Config) resolveIdentityPaths() {
	dir := filepath.Dir(c.Path)
	abs := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(dir, p)
	}
	for i := range c.Identity.Issuers {
		c.Identity.Issuers[i].KeysFile = abs(c.Identity.Issuers[i].KeysFile)
	}
	c.Identity.Tokens.SigningKeyFile = abs(c.Identity.Tokens.SigningKeyFile)
	c.Identity.Tokens.RevokedFile = abs(c.Identity.Tokens.RevokedFile)
	c.Identity.APIKeysFile = abs(c.Identity.APIKeysFile)
}

// KeysFile is the file of API keys that `portcullis keys` manages and the
// gateway re-reads while serving (identity.api_keys_file).
type KeysFile struct {
	Keys []FileKey `yaml:"keys"`
}

// FileKey is one key of a keys file.
type FileKey struct {
	APIKey `yaml:",inline"`
	// Created is when the key was generated (RFC 3339).
	Created string `yaml:"created,omitempty"`
	// Revoked is when the key was revoked (RFC 3339); a revoked key is
	// refused. Zero value: not revoked.
	Revoked string `yaml:"revoked,omitempty"`
}

// LoadKeysFile reads and checks a keys file. A missing file is an empty one.
func LoadKeysFile(path string) (*KeysFile, error) {
	src, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &KeysFile{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read keys file: %w", err)
	}
	var kf KeysFile
	dec := yaml.NewDecoder(bytes.NewReader(src))
	dec.KnownFields(true)
	if err := dec.Decode(&kf); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var problems []string
	hashes := map[string]bool{}
	for i, k := range kf.Keys {
		where := fmt.Sprintf("keys[%d]", i)
		if k.Name == "" || k.Subject == "" {
			problems = append(problems, where+": name and subject are required")
		}
		if !validHash(k.Hash) {
			problems = append(problems, fmt.Sprintf("%s.hash: must be %q followed by 64 hex digits", where, HashPrefix))
		} else if hashes[k.Hash] {
			problems = append(problems, where+".hash: is the same as another key's")
		}
		hashes[k.Hash] = true
		for field, v := range map[string]string{"expires": k.Expires, "created": k.Created, "revoked": k.Revoked} {
			if v == "" {
				continue
			}
			if _, err := time.Parse(time.RFC3339, v); err != nil {
				problems = append(problems, fmt.Sprintf("%s.%s: %q is not an RFC 3339 time", where, field, v))
			}
		}
		if k.Demo {
			problems = append(problems, where+".demo: the demo key belongs in the config file, not the keys file")
		}
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("%s: %s", path, strings.Join(problems, "; "))
	}
	return &kf, nil
}

// Save writes the keys file atomically, readable by its owner only.
func (kf *KeysFile) Save(path string) error {
	var buf bytes.Buffer
	buf.WriteString("# Portcullis API keys, managed with `portcullis keys`. Only hashes are stored.\n")
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(kf); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".keys-*")
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
