package config

import (
	"encoding/base64"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
)

// SSO configures sign-in in the browser through the company's OpenID
// Connect identity providers (Okta, Entra ID, Dex, ...), the session
// cookies that follow, and the signed-in portal. Zero value: off.
type SSO struct {
	// PublicURL is the gateway's address as browsers reach it, such as
	// https://llm.example.com. The redirect URI registered at every IdP is
	// PublicURL + "/oauth2/callback"; cookies are Secure when it is https.
	// Required when providers are set.
	PublicURL string `yaml:"public_url"`
	// Providers are the identity providers users may sign in with; the
	// sign-in page lists them in this order.
	Providers []SSOProvider `yaml:"providers"`
	// Session configures the session cookies.
	Session Session `yaml:"session"`
}

// SSOProvider is one OpenID Connect identity provider.
type SSOProvider struct {
	// Name identifies the provider in URLs, logs and sessions: lowercase
	// letters, digits and dashes, such as okta or entra.
	Name string `yaml:"name"`
	// DisplayName is what the sign-in page shows. Zero value: Name.
	DisplayName string `yaml:"display_name"`
	// Kind selects the claim defaults of a well-known IdP: okta, entra or
	// generic. Zero value: generic.
	Kind string `yaml:"kind"`
	// Issuer is the IdP's issuer URL; discovery is read from
	// Issuer + "/.well-known/openid-configuration".
	Issuer string `yaml:"issuer"`
	// ClientID and ClientSecret are the gateway's registration at the IdP.
	ClientID     string `yaml:"client_id"`
	ClientSecret Secret `yaml:"client_secret"`
	// Scopes are requested at sign-in. Zero value: openid, email, profile
	// and offline_access (for a refresh token), plus groups for Okta.
	Scopes []string `yaml:"scopes"`
	// Claims maps the ID token's claims onto the identity.
	Claims SSOClaims `yaml:"claims"`
	// GroupNames maps group ids to names, for IdPs such as Entra ID whose
	// groups claim holds object ids (GUIDs). Groups not listed keep their id.
	GroupNames map[string]string `yaml:"group_names"`
	// TrustEmail lets the identity's email (which policies may match on)
	// come from the email claim even when the IdP does not vouch for it
	// with email_verified. Entra ID never sends email_verified, and its
	// email claim can be set by tenant admins, so leave this off unless the
	// tenant is yours alone. Zero value: only verified emails are used.
	TrustEmail bool `yaml:"trust_email"`
}

// SSOClaims names the ID token claims the identity is read from.
type SSOClaims struct {
	// Subject lists the claims whose values, joined with "/", identify the
	// user. Zero value: [sub]; for Entra ID [tid, oid], which stay the same
	// across applications. email and preferred_username are refused here
	// unless trust_email is set, since users or admins can change them.
	Subject []string `yaml:"subject"`
	// SubjectPrefix is put before the subject. Zero value: the issuer and
	// "#", so two IdPs can never name the same person.
	SubjectPrefix *string `yaml:"subject_prefix"`
	// Email, Name, Groups and Roles are the claims holding those fields.
	// Zero values: email, name, groups, roles.
	Email  string `yaml:"email"`
	Name   string `yaml:"name"`
	Groups string `yaml:"groups"`
	Roles  string `yaml:"roles"`
}

// Session configures the browser session cookies.
type Session struct {
	// Keys encrypt the session cookies (AES-256-GCM): each is 32 random
	// bytes in base64 (`openssl rand -base64 32`). The first one seals new
	// cookies; all of them open existing ones, so a rotation adds the new
	// key first and removes the old one after a lifetime.
	Keys []Secret `yaml:"keys"`
	// Lifetime is how long a sign-in lasts at most, refreshes included.
	// Zero value: 12h.
	Lifetime Duration `yaml:"lifetime"`
	// RefreshBefore is how long before the ID token expires the gateway
	// renews it with the refresh token. Zero value: 1m.
	RefreshBefore Duration `yaml:"refresh_before"`
	// CookieName is the session cookie's name; large sessions continue in
	// CookieName_1, CookieName_2, .... Zero value: portcullis_session.
	CookieName string `yaml:"cookie_name"`
}

// Defaults for SSO.
const (
	DefaultSessionLifetime = 12 * time.Hour
	DefaultRefreshBefore   = time.Minute
	DefaultSessionCookie   = "portcullis_session"
	// SessionKeyBytes is the size of a session key.
	SessionKeyBytes = 32
)

// SSOKinds are the values SSOProvider.Kind may take.
var SSOKinds = []string{"generic", "okta", "entra"}

var ssoNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`)

// Enabled says whether browser sign-in is configured.
func (s *SSO) Enabled() bool { return len(s.Providers) > 0 }

// SecureCookies says whether cookies must carry the Secure attribute.
func (s *SSO) SecureCookies() bool { return strings.HasPrefix(s.PublicURL, "https://") }

// DecodeSessionKey reads one session key.
func DecodeSessionKey(k Secret) ([]byte, error) {
	v := strings.TrimSpace(k.Reveal())
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(v); err == nil {
			if len(b) != SessionKeyBytes {
				return nil, fmt.Errorf("is %d bytes; a session key is %d random bytes in base64 (`openssl rand -base64 32`)", len(b), SessionKeyBytes)
			}
			return b, nil
		}
	}
	return nil, fmt.Errorf("is not base64; a session key is %d random bytes in base64 (`openssl rand -base64 32`)", SessionKeyBytes)
}

func (c *Config) applySSODefaults() {
	s := &c.SSO
	s.PublicURL = strings.TrimSuffix(s.PublicURL, "/")
	if s.Session.Lifetime == 0 {
		s.Session.Lifetime = Duration(DefaultSessionLifetime)
	}
	if s.Session.RefreshBefore == 0 {
		s.Session.RefreshBefore = Duration(DefaultRefreshBefore)
	}
	if s.Session.CookieName == "" {
		s.Session.CookieName = DefaultSessionCookie
	}
	for i := range s.Providers {
		p := &s.Providers[i]
		if p.Kind == "" {
			p.Kind = "generic"
		}
		if p.DisplayName == "" {
			p.DisplayName = p.Name
		}
		if len(p.Scopes) == 0 {
			p.Scopes = []string{"openid", "email", "profile", "offline_access"}
			if p.Kind == "okta" {
				p.Scopes = append(p.Scopes, "groups")
			}
		}
		m := &p.Claims
		if len(m.Subject) == 0 {
			m.Subject = []string{"sub"}
			if p.Kind == "entra" {
				m.Subject = []string{"tid", "oid"}
			}
		}
		if m.SubjectPrefix == nil {
			prefix := p.Issuer + "#"
			m.SubjectPrefix = &prefix
		}
		if m.Email == "" {
			m.Email = "email"
		}
		if m.Name == "" {
			m.Name = "name"
		}
		if m.Groups == "" {
			m.Groups = "groups"
		}
		if m.Roles == "" {
			m.Roles = "roles"
		}
	}
}

// validateSSO fills the sso section's defaults and checks it; validate
// calls it.
func (c *Config) validateSSO(l *loader) {
	c.applySSODefaults()
	s := c.SSO
	if !s.Enabled() {
		if len(s.Session.Keys) > 0 || s.PublicURL != "" {
			l.fail("sso.providers", "is empty, so nobody can sign in; list at least one identity provider or remove the sso section")
		}
		return
	}
	if u, err := url.Parse(s.PublicURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		l.fail("sso.public_url", "%q is not the gateway's origin; write it like https://llm.example.com (no path), the address browsers use", s.PublicURL)
	} else if u.Scheme == "http" && !loopbackHost(u.Hostname()) {
		l.fail("sso.public_url", "%q is plain http on a non-loopback host; session cookies would travel unencrypted, so use https", s.PublicURL)
	}
	if len(s.Session.Keys) == 0 {
		l.fail("sso.session.keys", "is required: give at least one key of %d random bytes in base64 (`openssl rand -base64 32`)", SessionKeyBytes)
	}
	for i, k := range s.Session.Keys {
		if _, err := DecodeSessionKey(k); err != nil {
			l.fail(fmt.Sprintf("sso.session.keys[%d]", i), "%s", err)
		}
	}
	if s.Session.Lifetime < 0 || s.Session.Lifetime.Std() > 30*24*time.Hour {
		l.fail("sso.session.lifetime", "must be between 0s and 720h; write it like 12h")
	}
	if s.Session.RefreshBefore < 0 {
		l.fail("sso.session.refresh_before", "must not be negative; write it like 1m")
	}
	if !validCookieName(s.Session.CookieName) {
		l.fail("sso.session.cookie_name", "%q is not a cookie name; use letters, digits, - and _", s.Session.CookieName)
	}
	seen := map[string]bool{}
	for i, p := range s.Providers {
		path := fmt.Sprintf("sso.providers[%d]", i)
		switch {
		case !ssoNameRE.MatchString(p.Name):
			l.fail(path+".name", "%q is not a provider name; use lowercase letters, digits and dashes, such as okta", p.Name)
		case seen[p.Name]:
			l.fail(path+".name", "%q is used by another provider; names must be unique", p.Name)
		}
		seen[p.Name] = true
		if !slices.Contains(SSOKinds, p.Kind) {
			l.fail(path+".kind", "%q is not a kind; use one of %s", p.Kind, strings.Join(SSOKinds, ", "))
		}
		if u, err := url.Parse(p.Issuer); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			l.fail(path+".issuer", "%q is not an http(s) URL; write the IdP's issuer, for example https://example.okta.com", p.Issuer)
		}
		if p.ClientID == "" {
			l.fail(path+".client_id", "is required; it is the gateway's application (client) id at the IdP")
		}
		if !slices.Contains(p.Scopes, "openid") {
			l.fail(path+".scopes", "must include openid, or the IdP sends no ID token")
		}
		for _, claim := range p.Claims.Subject {
			if (claim == "email" || claim == "preferred_username" || claim == "upn") && !p.TrustEmail {
				l.fail(path+".claims.subject", "%q can be changed by users or admins, so it must not identify anyone; use sub (or tid and oid for Entra ID), or set trust_email if this IdP's %s is immutable", claim, claim)
			}
			if claim == "" {
				l.fail(path+".claims.subject", "lists an empty claim name")
			}
		}
	}
}

// validCookieName allows the characters of an RFC 6265 token that are
// safe in every browser.
func validCookieName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return false
		}
	}
	return true
}

func loopbackHost(h string) bool {
	return h == "localhost" || h == "::1" || strings.HasPrefix(h, "127.")
}
