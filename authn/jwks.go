package authn

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"
)

// publicKey is one verification key of an issuer.
type publicKey struct {
	kid string
	// alg, when the JWK names one, is the only algorithm the key may verify.
	alg string
	key crypto.PublicKey
}

// keySet is an issuer's keys at one moment. A key without a kid (a PEM
// key) matches any token whose algorithm fits it.
type keySet struct {
	byKid map[string]*publicKey
	anon  []*publicKey
}

// lookup returns the keys that may verify a token with this kid and alg.
func (s *keySet) lookup(kid, alg string) []*publicKey {
	if s == nil {
		return nil
	}
	if k, ok := s.byKid[kid]; ok && kid != "" {
		if keyFits(k, alg) {
			return []*publicKey{k}
		}
		return nil
	}
	var out []*publicKey
	for _, k := range s.anon {
		if keyFits(k, alg) {
			out = append(out, k)
		}
	}
	if kid == "" && len(out) == 0 && len(s.byKid) == 1 {
		// A token without a kid from an issuer with a single key.
		for _, k := range s.byKid {
			if keyFits(k, alg) {
				out = append(out, k)
			}
		}
	}
	return out
}

// keyFits reports whether the key's type matches the algorithm, so that a
// key can never be used with an algorithm of another family (the RSA key as
// an HMAC secret, say).
func keyFits(k *publicKey, alg string) bool {
	if k.alg != "" && k.alg != alg {
		return false
	}
	switch key := k.key.(type) {
	case *rsa.PublicKey:
		return strings.HasPrefix(alg, "RS") || strings.HasPrefix(alg, "PS")
	case *ecdsa.PublicKey:
		switch alg {
		case "ES256":
			return key.Curve == elliptic.P256()
		case "ES384":
			return key.Curve == elliptic.P384()
		case "ES512":
			return key.Curve == elliptic.P521()
		}
	case ed25519.PublicKey:
		return alg == "EdDSA"
	}
	return false
}

// errKeysUnavailable means the issuer's keys could not be fetched and none
// are cached.
var errKeysUnavailable = errors.New("the issuer's keys are unavailable")

// remoteKeys is an issuer's JWKS, fetched over HTTP and cached. A token
// with an unknown kid causes a refetch at most once per refresh interval;
// when a fetch fails the cached keys stay in use.
type remoteKeys struct {
	issuer  string
	jwksURL string // empty: found through discovery
	client  *http.Client
	every   time.Duration
	onError func(error)

	keys      atomic.Pointer[keySet]
	fetches   singleflight.Group
	mu        sync.Mutex // guards lastFetch and discovered
	lastFetch time.Time
	// discovered is the jwks_uri from the discovery document.
	discovered string
	failures   atomic.Int64
}

// maxJWKSBytes bounds a JWKS or discovery document.
const maxJWKSBytes = 1 << 20

// fetchTimeout bounds one fetch of the keys.
const fetchTimeout = 10 * time.Second

// keysFor returns the keys that may verify a token with kid and alg,
// refetching the set when the kid is unknown and the refresh interval
// allows.
func (r *remoteKeys) keysFor(ctx context.Context, kid, alg string) ([]*publicKey, error) {
	if ks := r.keys.Load().lookup(kid, alg); len(ks) > 0 {
		return ks, nil
	}
	_, err, _ := r.fetches.Do("", func() (any, error) {
		r.mu.Lock()
		due := r.lastFetch.IsZero() || time.Since(r.lastFetch) >= r.every
		if due {
			r.lastFetch = time.Now()
		}
		r.mu.Unlock()
		if !due {
			return nil, nil
		}
		return nil, r.refresh(context.WithoutCancel(ctx))
	})
	if ks := r.keys.Load().lookup(kid, alg); len(ks) > 0 {
		return ks, nil
	}
	if r.keys.Load() == nil && err != nil {
		return nil, errKeysUnavailable
	}
	return nil, nil
}

// refresh fetches the key set now. A failure keeps the cached keys, is
// counted and reported.
func (r *remoteKeys) refresh(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	ks, err := r.fetch(ctx)
	if err != nil {
		r.failures.Add(1)
		if r.onError != nil {
			r.onError(err)
		}
		return err
	}
	r.keys.Store(ks)
	return nil
}

func (r *remoteKeys) fetch(ctx context.Context) (*keySet, error) {
	u := r.jwksURL
	if u == "" {
		r.mu.Lock()
		u = r.discovered
		r.mu.Unlock()
	}
	if u == "" {
		var doc struct {
			Issuer  string `json:"issuer"`
			JWKSURI string `json:"jwks_uri"`
		}
		discovery := strings.TrimSuffix(r.issuer, "/") + "/.well-known/openid-configuration"
		if err := getJSON(ctx, r.client, discovery, &doc); err != nil {
			return nil, fmt.Errorf("discovery: %w", err)
		}
		// As OIDC Discovery requires: the document speaks for this issuer.
		if doc.Issuer != r.issuer {
			return nil, fmt.Errorf("discovery: %s names issuer %q, not %q", discovery, doc.Issuer, r.issuer)
		}
		if doc.JWKSURI == "" {
			return nil, fmt.Errorf("discovery: %s has no jwks_uri", discovery)
		}
		u = doc.JWKSURI
		r.mu.Lock()
		r.discovered = u
		r.mu.Unlock()
	}
	var raw json.RawMessage
	if err := getJSON(ctx, r.client, u, &raw); err != nil {
		return nil, fmt.Errorf("jwks: %w", err)
	}
	ks, err := parseJWKS(raw)
	if err != nil {
		return nil, fmt.Errorf("jwks %s: %w", u, err)
	}
	return ks, nil
}

func getJSON(ctx context.Context, c *http.Client, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: status %s", url, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	if len(body) > maxJWKSBytes {
		return fmt.Errorf("GET %s: the document is over %d bytes", url, maxJWKSBytes)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	return nil
}

// jwk is a JSON Web Key (RFC 7517) as far as verification needs it.
type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Use string `json:"use"`
	Alg string `json:"alg"`
	N   string `json:"n"`
	E   string `json:"e"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y"`
}

// parseJWKS reads a JWK Set. Keys that are not for signatures, or of a
// type or curve the gateway does not verify with, are left out; a set with
// no usable key at all is an error.
func parseJWKS(raw []byte) (*keySet, error) {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(raw, &set); err != nil {
		return nil, fmt.Errorf("not a JWK set: %w", err)
	}
	ks := &keySet{byKid: map[string]*publicKey{}}
	var problems []string
	for i, rawKey := range set.Keys {
		var k jwk
		if err := json.Unmarshal(rawKey, &k); err != nil {
			problems = append(problems, fmt.Sprintf("key %d: %v", i, err))
			continue
		}
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		pk, err := k.publicKey()
		if err != nil {
			problems = append(problems, fmt.Sprintf("key %d (kid %q): %v", i, k.Kid, err))
			continue
		}
		p := &publicKey{kid: k.Kid, alg: k.Alg, key: pk}
		if k.Kid == "" {
			ks.anon = append(ks.anon, p)
		} else {
			ks.byKid[k.Kid] = p
		}
	}
	if len(ks.byKid) == 0 && len(ks.anon) == 0 {
		if len(problems) > 0 {
			return nil, fmt.Errorf("no usable signing key: %s", strings.Join(problems, "; "))
		}
		return nil, errors.New("no usable signing key")
	}
	return ks, nil
}

// minRSABits is the smallest RSA modulus accepted.
const minRSABits = 2048

func (k *jwk) publicKey() (crypto.PublicKey, error) {
	switch k.Kty {
	case "RSA":
		n, err := b64int(k.N)
		if err != nil {
			return nil, fmt.Errorf("n: %w", err)
		}
		e, err := b64int(k.E)
		if err != nil {
			return nil, fmt.Errorf("e: %w", err)
		}
		if n.BitLen() < minRSABits {
			return nil, fmt.Errorf("RSA key of %d bits; at least %d are required", n.BitLen(), minRSABits)
		}
		if !e.IsInt64() || e.Int64() < 3 || e.Int64() > 1<<31-1 || e.Bit(0) == 0 {
			return nil, errors.New("RSA exponent is not a small odd number")
		}
		return &rsa.PublicKey{N: n, E: int(e.Int64())}, nil
	case "EC":
		var curve elliptic.Curve
		switch k.Crv {
		case "P-256":
			curve = elliptic.P256()
		case "P-384":
			curve = elliptic.P384()
		case "P-521":
			curve = elliptic.P521()
		default:
			return nil, fmt.Errorf("curve %q is not supported", k.Crv)
		}
		x, err := base64.RawURLEncoding.DecodeString(k.X)
		if err != nil {
			return nil, fmt.Errorf("x: %w", err)
		}
		y, err := base64.RawURLEncoding.DecodeString(k.Y)
		if err != nil {
			return nil, fmt.Errorf("y: %w", err)
		}
		size := (curve.Params().BitSize + 7) / 8
		if len(x) != size || len(y) != size {
			return nil, fmt.Errorf("coordinates are not %d bytes", size)
		}
		// ParseUncompressedPublicKey checks that the point is on the curve.
		point := append(append([]byte{4}, x...), y...)
		return ecdsa.ParseUncompressedPublicKey(curve, point)
	case "OKP":
		if k.Crv != "Ed25519" {
			return nil, fmt.Errorf("curve %q is not supported", k.Crv)
		}
		x, err := base64.RawURLEncoding.DecodeString(k.X)
		if err != nil || len(x) != ed25519.PublicKeySize {
			return nil, errors.New("x is not a 32-byte Ed25519 key")
		}
		return ed25519.PublicKey(x), nil
	default:
		return nil, fmt.Errorf("key type %q is not supported", k.Kty)
	}
}

func b64int(s string) (*big.Int, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, err
	}
	if len(b) == 0 {
		return nil, errors.New("empty")
	}
	return new(big.Int).SetBytes(b), nil
}

// parseStaticKeys reads an issuer's keys from a file's content: a JWK Set
// (JSON) or one or more PEM public keys or certificates.
func parseStaticKeys(src []byte) (*keySet, error) {
	trimmed := strings.TrimSpace(string(src))
	if strings.HasPrefix(trimmed, "{") {
		return parseJWKS(src)
	}
	ks := &keySet{byKid: map[string]*publicKey{}}
	rest := src
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		var key crypto.PublicKey
		switch block.Type {
		case "PUBLIC KEY":
			k, err := x509.ParsePKIXPublicKey(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("PEM public key: %w", err)
			}
			key = k
		case "CERTIFICATE":
			cert, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("PEM certificate: %w", err)
			}
			key = cert.PublicKey
		default:
			return nil, fmt.Errorf("PEM block %q is not a public key or certificate", block.Type)
		}
		switch k := key.(type) {
		case *rsa.PublicKey:
			if k.N.BitLen() < minRSABits {
				return nil, fmt.Errorf("RSA key of %d bits; at least %d are required", k.N.BitLen(), minRSABits)
			}
		case *ecdsa.PublicKey, ed25519.PublicKey:
		default:
			return nil, fmt.Errorf("public key of type %T is not supported", key)
		}
		ks.anon = append(ks.anon, &publicKey{key: key})
	}
	if len(ks.anon) == 0 {
		return nil, errors.New("no PEM public key or JWK set found")
	}
	return ks, nil
}
