package authn

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"portcullis/config"
)

// FuzzVerify feeds arbitrary bearer tokens to the verifier: it must never
// panic, must refuse with a reason fit for a header, and must accept only
// the signed content the issuer really signed.
func FuzzVerify(f *testing.F) {
	p := newIDP(f)
	j, err := NewJWTs(context.Background(), []config.Issuer{p.issuerConfig()}, JWTOptions{})
	if err != nil {
		f.Fatal(err)
	}
	good := sign(f, p.key("k1"), jwt.SigningMethodRS256, "k1", goodClaims())
	signed := good[:strings.LastIndexByte(good, '.')+1]
	f.Add(good)
	f.Add(strings.Replace(good, ".", "..", 1))
	f.Add("eyJhbGciOiJub25lIn0.eyJpc3MiOiJodHRwczovL2lkcC5leGFtcGxlLnRlc3QifQ.")
	f.Add("eyJ.eyJ.")
	f.Fuzz(func(t *testing.T, token string) {
		id, err := j.Verify(context.Background(), token)
		if err == nil {
			// Base64 lets a signature be spelled a few ways; the signed
			// content cannot change.
			if !strings.HasPrefix(token, signed) || id == nil {
				t.Fatalf("accepted %q", token)
			}
			return
		}
		var ref *Refusal
		if !errors.As(err, &ref) || id != nil {
			t.Fatalf("Verify(%q) = %v, %v; want a refusal", token, id, err)
		}
		if strings.ContainsAny(ref.Reason, "\"\\\r\n") {
			t.Fatalf("reason %q could break a header", ref.Reason)
		}
	})
}

// FuzzParseJWKS reads arbitrary key set documents, as an IdP (or whoever
// answers in its place) may send: no panic, and every key it keeps fits an
// algorithm unless it is pinned to one.
func FuzzParseJWKS(f *testing.F) {
	f.Add([]byte(`{"keys":[{"kty":"RSA","kid":"a","n":"AQAB","e":"AQAB"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"EC","crv":"P-256","x":"AAAA","y":"AAAA"},{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		ks, err := parseJWKS(doc)
		if err != nil {
			return
		}
		for _, k := range append(ks.anon, mapValues(ks.byKid)...) {
			if k.alg != "" {
				continue // a key pinned to another algorithm is never used
			}
			if !keyFits(k, "RS256") && !keyFits(k, "PS256") && !keyFits(k, "ES256") && !keyFits(k, "ES384") &&
				!keyFits(k, "ES512") && !keyFits(k, "EdDSA") {
				t.Fatalf("kept a key that fits no algorithm: %+v", k)
			}
		}
	})
}

func mapValues(m map[string]*publicKey) []*publicKey {
	var out []*publicKey
	for _, v := range m {
		out = append(out, v)
	}
	return out
}
