package authn

import (
	"context"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"portcullis/config"
)

// BenchmarkVerifyCached is a repeat call with the same token: a SHA-256 of
// the token and a cache lookup, no signature check.
func BenchmarkVerifyCached(b *testing.B) {
	j, tok := benchSetup(b)
	ctx := context.Background()
	if _, err := j.Verify(ctx, tok); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := j.Verify(ctx, tok); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyUncached is a first call with a token (keys cached, as
// after start-up): parse, RS256 signature check, claim checks, mapping.
func BenchmarkVerifyUncached(b *testing.B) {
	j, tok := benchSetup(b)
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		j.cache.lru.Purge()
		if _, err := j.Verify(ctx, tok); err != nil {
			b.Fatal(err)
		}
	}
}

func benchSetup(b *testing.B) (*JWTs, string) {
	p := newIDP(b)
	j, err := NewJWTs(context.Background(), []config.Issuer{p.issuerConfig()}, JWTOptions{})
	if err != nil {
		b.Fatal(err)
	}
	return j, sign(b, p.key("k1"), jwt.SigningMethodRS256, "k1", goodClaims())
}
