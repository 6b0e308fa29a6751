package authn

import (
	"crypto/sha256"
	"time"

	"github.com/hashicorp/golang-lru/v2/expirable"
)

// verifiedCache remembers tokens that passed verification, keyed by the
// SHA-256 of the token (the token itself is never kept), each until the
// token expires.
type verifiedCache struct {
	lru *expirable.LRU[[sha256.Size]byte, *verified]
}

// verified is one cached verification.
type verified struct {
	identity *Identity
	exp      time.Time
	issuer   *trustedIssuer
	jti      string
}

// cacheTTL bounds how long an entry lives whatever its token's exp, so a
// long-lived token is re-verified now and then.
const cacheTTL = 10 * time.Minute

func newVerifiedCache(size int) *verifiedCache {
	return &verifiedCache{lru: expirable.NewLRU[[sha256.Size]byte, *verified](size, nil, cacheTTL)}
}

// get returns the entry for a token hash if it is still valid at now.
func (c *verifiedCache) get(key [sha256.Size]byte, now time.Time) (*verified, bool) {
	e, ok := c.lru.Get(key)
	if !ok {
		return nil, false
	}
	if !now.Before(e.exp) {
		c.lru.Remove(key)
		return nil, false
	}
	return e, true
}

func (c *verifiedCache) put(key [sha256.Size]byte, e *verified, now time.Time) {
	if now.Before(e.exp) {
		c.lru.Add(key, e)
	}
}
