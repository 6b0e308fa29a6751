package authn

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"

	"portcullis/config"
)

// KeyPrefix starts every key that `portcullis keys generate` makes, so keys
// are easy to spot in code review and by secret scanners.
const KeyPrefix = "pcx_"

// APIKeys authenticates gateway API keys. Keys are held only as SHA-256
// hashes: a key is 256 random bits, so a fast hash is enough and a stolen
// config does not reveal usable keys.
type APIKeys struct {
	byHash map[[sha256.Size]byte]*apiKey
}

type apiKey struct {
	hash     [sha256.Size]byte
	identity Identity
}

var _ Authenticator = (*APIKeys)(nil)

// NewAPIKeys builds the authenticator from the configured keys. The hashes
// were validated by config.Load.
func NewAPIKeys(keys []config.APIKey) (*APIKeys, error) {
	a := &APIKeys{byHash: make(map[[sha256.Size]byte]*apiKey, len(keys))}
	for _, k := range keys {
		raw, err := hex.DecodeString(strings.TrimPrefix(k.Hash, config.HashPrefix))
		if err != nil || len(raw) != sha256.Size {
			return nil, fmt.Errorf("api key %q: hash is not %s<64 hex digits>", k.Name, config.HashPrefix)
		}
		entry := &apiKey{identity: Identity{
			Type:       TypeAPIKey,
			Subject:    k.Subject,
			Groups:     append([]string(nil), k.Groups...),
			Credential: k.Name,
		}}
		copy(entry.hash[:], raw)
		a.byHash[entry.hash] = entry
	}
	return a, nil
}

// Authenticate implements Authenticator. A bearer token that looks like a
// JWT is left to the JWT authenticators.
func (a *APIKeys) Authenticate(r *http.Request) (*Identity, error) {
	token := BearerToken(r)
	if token == "" {
		return nil, ErrNoCredential
	}
	sum := sha256.Sum256([]byte(token))
	// The map is keyed by the hash of the presented key, so lookup timing
	// can only tell an attacker about SHA-256 outputs, never about a stored
	// key; the constant-time compare below states the check explicitly.
	entry, ok := a.byHash[sum]
	if !ok || subtle.ConstantTimeCompare(entry.hash[:], sum[:]) != 1 {
		if looksLikeJWT(token) {
			return nil, ErrNoCredential
		}
		return nil, ErrInvalidCredential
	}
	id := entry.identity
	return &id, nil
}

func looksLikeJWT(token string) bool {
	return strings.Count(token, ".") == 2 && strings.HasPrefix(token, "ey")
}

// GenerateKey returns a new random API key and the hash to store in config.
func GenerateKey() (key, hash string) {
	var b [32]byte
	rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+).
	key = KeyPrefix + base64.RawURLEncoding.EncodeToString(b[:])
	return key, HashKey(key)
}

// HashKey returns the stored form of a key: "sha256:" and the hex digest.
func HashKey(key string) string {
	sum := sha256.Sum256([]byte(key))
	return config.HashPrefix + hex.EncodeToString(sum[:])
}
