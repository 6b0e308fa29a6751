// Package authn answers "who is this?" for every request: it owns the
// Identity type and the chain of authenticators (gateway API keys now; session
// cookies, gateway tokens and IdP or service-account JWTs plug in the same way).
package authn

import (
	"errors"
	"net/http"
	"strings"
)

// Type says what kind of principal an identity is.
type Type string

// Identity types, as the policy sees them in input.identity.type.
const (
	TypeUser    Type = "user"
	TypeService Type = "service"
	TypeAPIKey  Type = "apikey"
)

// Identity is the authenticated caller.
type Identity struct {
	Type    Type
	Subject string
	Email   string
	Name    string
	Groups  []string
	Roles   []string
	Issuer  string
	// Credential names the credential that was presented (an API key's name),
	// for the audit record; never the credential itself.
	Credential string
	// Claims are the raw claims of a JWT-based identity.
	Claims map[string]any
}

// Authenticator recognises one kind of credential.
type Authenticator interface {
	// Authenticate returns the caller's identity. It returns ErrNoCredential
	// when the request carries no credential of its kind, so the chain can
	// try the next authenticator, and another error when it does carry one
	// that is not valid.
	Authenticate(r *http.Request) (*Identity, error)
}

// Errors an Authenticator returns.
var (
	// ErrNoCredential means the request carries no credential this
	// authenticator understands.
	ErrNoCredential = errors.New("no credential")
	// ErrInvalidCredential means a credential was presented and refused.
	ErrInvalidCredential = errors.New("invalid credential")
)

// Chain tries its authenticators in order; the first that recognises a
// credential decides.
type Chain []Authenticator

// Authenticate returns the identity of the first authenticator that
// recognises the request's credential. When none does, the error is
// ErrNoCredential if the request presented nothing, and ErrInvalidCredential
// if it presented something nobody accepts.
func (c Chain) Authenticate(r *http.Request) (*Identity, error) {
	// An authenticator may say more than "no credential" (a session that
	// ended, say); the most telling such answer is the one returned.
	none := ErrNoCredential
	for _, a := range c {
		id, err := a.Authenticate(r)
		if errors.Is(err, ErrNoCredential) {
			if err != ErrNoCredential {
				none = err
			}
			continue
		}
		return id, err
	}
	if BearerToken(r) != "" {
		return nil, ErrInvalidCredential
	}
	return nil, none
}

// BearerToken returns the credential of the request: the token of an
// "Authorization: Bearer" header, or else the value of "x-api-key" (the
// header Anthropic's SDKs send).
func BearerToken(r *http.Request) string {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, token, ok := strings.Cut(h, " ")
		if ok && strings.EqualFold(scheme, "Bearer") {
			return strings.TrimSpace(token)
		}
	}
	// Another scheme (Basic, say, from a proxy in front) does not hide
	// the key.
	return strings.TrimSpace(r.Header.Get("X-Api-Key"))
}
