package authn

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"portcullis/config"
)

// KeyPrefix starts every key that `portcullis keys generate` makes, so keys
// are easy to spot in code review and by secret scanners.
const KeyPrefix = "pcx_"

// APIKeys authenticates gateway API keys. Keys are held only as SHA-256
// hashes: a key is 256 random bits, so a fast hash is enough and a stolen
// config does not reveal usable keys. Besides the keys in the config, a keys
// file (identity.api_keys_file) can be loaded and re-read while serving, so
// that a key revoked there is refused at once.
type APIKeys struct {
	byHash map[[sha256.Size]byte]*apiKey
	file   atomic.Pointer[map[[sha256.Size]byte]*apiKey]
	stamp  atomic.Pointer[fileStamp]
	now    func() time.Time
}

type apiKey struct {
	hash     [sha256.Size]byte
	identity Identity
	expires  time.Time // zero: never
	revoked  bool
}

var _ Authenticator = (*APIKeys)(nil)

// NewAPIKeys builds the authenticator from the configured keys. The hashes
// were validated by config.Load.
func NewAPIKeys(keys []config.APIKey) (*APIKeys, error) {
	byHash, err := indexKeys(keys, nil)
	if err != nil {
		return nil, err
	}
	return &APIKeys{byHash: byHash, now: time.Now}, nil
}

func indexKeys(keys []config.APIKey, revoked func(i int) bool) (map[[sha256.Size]byte]*apiKey, error) {
	byHash := make(map[[sha256.Size]byte]*apiKey, len(keys))
	for i, k := range keys {
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
		if k.Expires != "" {
			entry.expires, err = time.Parse(time.RFC3339, k.Expires)
			if err != nil {
				return nil, fmt.Errorf("api key %q: expires: %w", k.Name, err)
			}
		}
		// The policy sees a key's model scope and expiry as claims, as it
		// sees those of a token.
		if k.Models != nil || !entry.expires.IsZero() {
			claims := map[string]any{}
			if k.Models != nil {
				models := make([]any, len(k.Models))
				for i, m := range k.Models {
					models[i] = m
				}
				claims["models"] = models
			}
			if !entry.expires.IsZero() {
				claims["exp"] = float64(entry.expires.Unix())
			}
			entry.identity.Claims = claims
		}
		entry.revoked = revoked != nil && revoked(i)
		copy(entry.hash[:], raw)
		byHash[entry.hash] = entry
	}
	return byHash, nil
}

// LoadFile reads the keys file at path, if it changed since the last read,
// and puts its keys in force in place of the file's previous ones. A
// missing file holds no keys. On an error the previous keys stay in force.
func (a *APIKeys) LoadFile(path string) error {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		// No file yet is no keys yet: `portcullis keys generate` creates it.
		a.file.Store(nil)
		a.stamp.Store(nil)
		return nil
	}
	if err != nil {
		return fmt.Errorf("api keys file: %w", err)
	}
	stamp := &fileStamp{mod: fi.ModTime(), size: fi.Size()}
	if old := a.stamp.Load(); old != nil && *old == *stamp {
		return nil
	}
	kf, err := config.LoadKeysFile(path)
	if err != nil {
		return err
	}
	keys := make([]config.APIKey, len(kf.Keys))
	for i, k := range kf.Keys {
		keys[i] = k.APIKey
	}
	byHash, err := indexKeys(keys, func(i int) bool { return kf.Keys[i].Revoked != "" })
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	a.file.Store(&byHash)
	a.stamp.Store(stamp)
	return nil
}

// WatchFile re-reads the keys file every interval until ctx ends; failures
// go to onError and leave the previous keys in force.
func (a *APIKeys) WatchFile(ctx context.Context, path string, every time.Duration, onError func(error)) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := a.LoadFile(path); err != nil && onError != nil {
				onError(err)
			}
		}
	}
}

// Authenticate implements Authenticator. A bearer token that looks like a
// JWT is left to the JWT authenticators.
func (a *APIKeys) Authenticate(r *http.Request) (*Identity, error) {
	token := BearerToken(r)
	if token == "" {
		return nil, ErrNoCredential
	}
	sum := sha256.Sum256([]byte(token))
	// The maps are keyed by the hash of the presented key, so lookup timing
	// can only tell an attacker about SHA-256 outputs, never about a stored
	// key; the constant-time compare below states the check explicitly.
	entry, ok := a.byHash[sum]
	if !ok {
		if fm := a.file.Load(); fm != nil {
			entry, ok = (*fm)[sum]
		}
	}
	if !ok || subtle.ConstantTimeCompare(entry.hash[:], sum[:]) != 1 {
		if looksLikeJWT(token) {
			return nil, ErrNoCredential
		}
		return nil, refuse("the API key is unknown or revoked")
	}
	if entry.revoked {
		return nil, refuse("the API key %s was revoked", quoteSafe(entry.identity.Credential))
	}
	if !entry.expires.IsZero() && !a.now().Before(entry.expires) {
		return nil, refuse("the API key %s expired at %s", quoteSafe(entry.identity.Credential), entry.expires.UTC().Format(time.RFC3339))
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
