package authn

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// sealer encrypts and authenticates cookie values with AES-256-GCM. The
// first key seals; every key opens, so keys can be rotated without signing
// anybody out. The cookie's name is bound into each value as additional
// data, so a value cannot be moved from one cookie to another.
type sealer struct {
	keys []sealKey
}

type sealKey struct {
	id   [4]byte // the first bytes of the key's SHA-256, to pick the key
	aead cipher.AEAD
}

// sealVersion starts every sealed value, so the format can change later.
const sealVersion = 1

// sealOverhead is what sealing adds to a value: version, key id, nonce, tag.
const sealOverhead = 1 + 4 + 12 + 16

var errSealed = errors.New("the cookie was not sealed by this gateway, or was altered")

func newSealer(keys [][]byte) (*sealer, error) {
	if len(keys) == 0 {
		return nil, errors.New("no session key")
	}
	s := &sealer{}
	for i, k := range keys {
		block, err := aes.NewCipher(k)
		if err != nil {
			return nil, fmt.Errorf("session key %d: %w", i, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("session key %d: %w", i, err)
		}
		sum := sha256.Sum256(k)
		var id [4]byte
		copy(id[:], sum[:4])
		s.keys = append(s.keys, sealKey{id: id, aead: aead})
	}
	return s, nil
}

// seal returns the base64url text of the sealed plaintext.
func (s *sealer) seal(name string, plaintext []byte) string {
	k := s.keys[0]
	out := make([]byte, 1+4+12, sealOverhead+len(plaintext))
	out[0] = sealVersion
	copy(out[1:5], k.id[:])
	rand.Read(out[5:17])
	out = k.aead.Seal(out, out[5:17], plaintext, []byte(name))
	return base64.RawURLEncoding.EncodeToString(out)
}

// open authenticates and decrypts a value that seal produced for the
// cookie of the same name.
func (s *sealer) open(name, value string) ([]byte, error) {
	raw, err := base64.RawURLEncoding.DecodeString(value)
	if err != nil || len(raw) < sealOverhead || raw[0] != sealVersion {
		return nil, errSealed
	}
	for _, k := range s.keys {
		if [4]byte(raw[1:5]) != k.id {
			continue
		}
		plain, err := k.aead.Open(nil, raw[5:17], raw[17:], []byte(name))
		if err != nil {
			return nil, errSealed
		}
		return plain, nil
	}
	return nil, errSealed
}

// cookieJar writes and reads sealed values that may be too large for one
// cookie: the value is split into parts kept in NAME, NAME_1, NAME_2, ...,
// the first part saying how many there are. The parts are joined before
// the value is opened, so a missing, altered or reordered part fails the
// authentication of the whole.
type cookieJar struct {
	sealer *sealer
	secure bool
}

// cookiePart is how much sealed text one cookie carries; with the name and
// attributes a cookie stays under the 4096 bytes every browser keeps.
const cookiePart = 3800

// maxCookieParts bounds a value at about 60 KiB, within what servers and
// browsers accept in a Cookie header.
const maxCookieParts = 16

// set seals plaintext into the cookies named name, removing parts left over
// from a larger earlier value. It returns the value as read will join it.
func (j *cookieJar) set(w http.ResponseWriter, r *http.Request, name, path string, plaintext []byte, expires time.Time) (string, error) {
	sealed := j.sealer.seal(name, plaintext)
	n := (len(sealed) + cookiePart - 1) / cookiePart
	if n > maxCookieParts {
		return "", fmt.Errorf("the session is %d bytes sealed, more than %d cookies can hold", len(sealed), maxCookieParts)
	}
	maxAge := int(time.Until(expires).Seconds())
	if maxAge <= 0 {
		maxAge = -1
	}
	for i := range n {
		part := sealed[i*cookiePart : min((i+1)*cookiePart, len(sealed))]
		if i == 0 {
			part = strconv.Itoa(n) + "." + part
		}
		http.SetCookie(w, j.cookie(partName(name, i), path, part, maxAge))
	}
	j.clearFrom(w, r, name, path, n)
	return strconv.Itoa(n) + "." + sealed, nil
}

// read joins the parts of the cookies named name, without opening them.
// ok is false when the request has no such cookie at all.
func (j *cookieJar) read(r *http.Request, name string) (joined string, ok bool, err error) {
	first, err := r.Cookie(name)
	if err != nil {
		return "", false, nil
	}
	count, _, found := strings.Cut(first.Value, ".")
	n, convErr := strconv.Atoi(count)
	if !found || convErr != nil || n < 1 || n > maxCookieParts {
		return "", true, errSealed
	}
	var b strings.Builder
	b.WriteString(first.Value)
	for i := 1; i < n; i++ {
		c, err := r.Cookie(partName(name, i))
		if err != nil {
			return "", true, fmt.Errorf("the session cookie is incomplete: part %d of %d is missing", i+1, n)
		}
		b.WriteString(c.Value)
	}
	return b.String(), true, nil
}

// open authenticates and decrypts a value that read joined.
func (j *cookieJar) open(name, joined string) ([]byte, error) {
	_, sealed, found := strings.Cut(joined, ".")
	if !found {
		return nil, errSealed
	}
	return j.sealer.open(name, sealed)
}

// get is read and then open.
func (j *cookieJar) get(r *http.Request, name string) (plaintext []byte, ok bool, err error) {
	joined, ok, err := j.read(r, name)
	if !ok || err != nil {
		return nil, ok, err
	}
	plain, err := j.open(name, joined)
	return plain, true, err
}

// clear expires every part of the cookies named name.
func (j *cookieJar) clear(w http.ResponseWriter, r *http.Request, name, path string) {
	j.clearFrom(w, r, name, path, 0)
}

// clearFrom expires the parts numbered from and above that the request
// carries (and NAME itself when from is 0).
func (j *cookieJar) clearFrom(w http.ResponseWriter, r *http.Request, name, path string, from int) {
	for _, c := range r.Cookies() {
		i, ok := partIndex(name, c.Name)
		if ok && i >= from {
			http.SetCookie(w, j.cookie(c.Name, path, "", -1))
		}
	}
}

func (j *cookieJar) cookie(name, path, value string, maxAge int) *http.Cookie {
	return &http.Cookie{
		Name:     name,
		Value:    value,
		Path:     path,
		MaxAge:   maxAge,
		HttpOnly: true,
		Secure:   j.secure,
		SameSite: http.SameSiteLaxMode,
	}
}

func partName(name string, i int) string {
	if i == 0 {
		return name
	}
	return name + "_" + strconv.Itoa(i)
}

// partIndex says which part of the cookies named name a cookie is.
func partIndex(name, cookie string) (int, bool) {
	if cookie == name {
		return 0, true
	}
	suffix, ok := strings.CutPrefix(cookie, name+"_")
	if !ok {
		return 0, false
	}
	i, err := strconv.Atoi(suffix)
	return i, err == nil && i > 0 && i < 2*maxCookieParts
}
