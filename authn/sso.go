package authn

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/oauth2"
	"golang.org/x/sync/singleflight"

	"portcullis/config"
)

// SSO signs people in through their company's OpenID Connect identity
// providers and keeps them signed in with sealed session cookies. It owns
// the flow's endpoints (Start, Callback, SignOut), a Middleware that opens
// and renews sessions, and it is the Authenticator of session-cookie
// calls, which must pass a CSRF check when they change anything.
type SSO struct {
	publicURL     string
	origin        string // scheme://host of publicURL
	providers     []*oidcProvider
	byName        map[string]*oidcProvider
	jar           *cookieJar
	cookieName    string
	lifetime      time.Duration
	refreshBefore time.Duration
	client        *http.Client
	onEvent       func(SSOEvent)
	renderError   func(w http.ResponseWriter, r *http.Request, status int, message string)
	now           func() time.Time

	// sessions caches opened sessions by the hash of their cookie, so a
	// session is decrypted and mapped once, not on every call.
	sessions    *lru.Cache[[32]byte, *cachedSession]
	refreshes   singleflight.Group
	discoveries singleflight.Group
}

// SSOOptions are SSO's optional parts.
type SSOOptions struct {
	// HTTPClient talks to the IdPs. Zero value: a client with a 30s timeout.
	HTTPClient *http.Client
	// OnEvent is told of sign-ins, refreshes, sign-outs and failures, for
	// the app log. Zero value: nothing is told.
	OnEvent func(SSOEvent)
	// RenderError answers a browser whose sign-in failed. Zero value: a
	// plain-text page.
	RenderError func(w http.ResponseWriter, r *http.Request, status int, message string)
	// Now is the clock. Zero value: time.Now.
	Now func() time.Time
}

// SSOEvent is something that happened to a sign-in or a session. It never
// holds a token or a cookie.
type SSOEvent struct {
	// Kind is sign_in, sign_in_failed, refresh, refresh_failed,
	// session_refused, sign_out or groups_overage.
	Kind     string
	Provider string
	Subject  string
	Err      error
}

// SSOProviderInfo is an identity provider as the sign-in page lists it.
type SSOProviderInfo struct {
	Name        string
	DisplayName string
}

// Session is a signed-in browser's state, sealed into its cookies.
type Session struct {
	// ID is random, for logs and to tie refreshes together.
	ID       string `json:"sid"`
	Provider string `json:"p"`
	// IDToken is the last verified ID token; the identity is read from it
	// and it is sent back to the IdP as id_token_hint at sign-out.
	IDToken      string `json:"t"`
	RefreshToken string `json:"r,omitempty"`
	// TokenExpiry is when the ID token expires (Unix seconds): the session
	// renews it before then, or ends.
	TokenExpiry int64 `json:"x"`
	Created     int64 `json:"c"`
	// Expires is the end of the session (Unix seconds), refreshes or not.
	Expires int64 `json:"e"`
	// CSRF is the token that cookie-authenticated calls changing state
	// must send back in the X-CSRF-Token header or a csrf form field.
	CSRF string `json:"k"`

	identity *Identity
}

// Identity returns the signed-in person.
func (s *Session) Identity() *Identity { return s.identity.clone() }

// cachedSession is a session opened from a cookie value. reissue is set
// for the cookie of a session that has since been refreshed: calls still
// carrying it get the session's new cookie.
type cachedSession struct {
	session *Session
	reissue bool
}

// oidcProvider is one configured identity provider. Discovery happens at the first
// sign-in and is retried after a failure, so an IdP that is down when the
// gateway starts does not stop it.
type oidcProvider struct {
	cfg config.SSOProvider

	conn    atomic.Pointer[idpConn]
	lastErr atomic.Pointer[time.Time] // the last failed discovery
}

// idpConn is what discovery yields.
type idpConn struct {
	oauth      oauth2.Config
	verifier   *oidc.IDTokenVerifier
	endSession string
}

// signInState travels in a short-lived sealed cookie from Start to Callback.
type signInState struct {
	State    string `json:"s"`
	Nonce    string `json:"n"`
	Verifier string `json:"v"`
	Provider string `json:"p"`
	ReturnTo string `json:"r"`
	Expires  int64  `json:"e"`
}

// Paths of the sign-in flow. The portal serves the pages among them.
const (
	SignInPath    = "/oauth2/sign_in"
	StartPath     = "/oauth2/start"
	CallbackPath  = "/oauth2/callback"
	SignOutPath   = "/oauth2/sign_out"
	SignedOutPath = "/oauth2/signed_out"
	// HomePath is where a sign-in lands unless it asked for another page.
	HomePath = "/portal/"
	// CSRFHeader carries the session's CSRF token on cookie-authenticated
	// calls that change state.
	CSRFHeader = "X-CSRF-Token"
)

// ErrCSRF is the refusal of a cookie-authenticated call that changes state
// without proving it comes from the gateway's own pages.
var ErrCSRF = errors.New("cross-site request refused")

// signInLifetime bounds the time from Start to Callback.
const signInLifetime = 10 * time.Minute

// rediscoverAfter is the least time between two discovery attempts of an
// IdP that failed.
const rediscoverAfter = 10 * time.Second

// sessionsCached bounds the cache of opened sessions.
const sessionsCached = 10000

// NewSSO builds the sign-in flow from the sso section. It contacts no IdP:
// discovery happens at the first sign-in.
func NewSSO(c config.SSO, o SSOOptions) (*SSO, error) {
	var keys [][]byte
	for i, k := range c.Session.Keys {
		b, err := config.DecodeSessionKey(k)
		if err != nil {
			return nil, fmt.Errorf("sso.session.keys[%d] %w", i, err)
		}
		keys = append(keys, b)
	}
	seal, err := newSealer(keys)
	if err != nil {
		return nil, err
	}
	u, err := url.Parse(c.PublicURL)
	if err != nil {
		return nil, fmt.Errorf("sso.public_url: %w", err)
	}
	cache, _ := lru.New[[32]byte, *cachedSession](sessionsCached)
	s := &SSO{
		publicURL:     c.PublicURL,
		origin:        u.Scheme + "://" + u.Host,
		byName:        map[string]*oidcProvider{},
		jar:           &cookieJar{sealer: seal, secure: c.SecureCookies()},
		cookieName:    c.Session.CookieName,
		lifetime:      c.Session.Lifetime.Std(),
		refreshBefore: c.Session.RefreshBefore.Std(),
		client:        o.HTTPClient,
		onEvent:       o.OnEvent,
		renderError:   o.RenderError,
		now:           o.Now,
		sessions:      cache,
	}
	if s.client == nil {
		s.client = &http.Client{Timeout: 30 * time.Second}
	}
	if s.onEvent == nil {
		s.onEvent = func(SSOEvent) {}
	}
	if s.renderError == nil {
		s.renderError = func(w http.ResponseWriter, _ *http.Request, status int, msg string) { http.Error(w, msg, status) }
	}
	if s.now == nil {
		s.now = time.Now
	}
	for _, pc := range c.Providers {
		p := &oidcProvider{cfg: pc}
		s.providers = append(s.providers, p)
		s.byName[pc.Name] = p
	}
	return s, nil
}

// RenderErrorsWith has the flow answer browsers with render's pages; call
// it before serving.
func (s *SSO) RenderErrorsWith(render func(w http.ResponseWriter, r *http.Request, status int, message string)) {
	s.renderError = render
}

// Providers lists the identity providers in the configured order.
func (s *SSO) Providers() []SSOProviderInfo {
	out := make([]SSOProviderInfo, len(s.providers))
	for i, p := range s.providers {
		out[i] = SSOProviderInfo{Name: p.cfg.Name, DisplayName: p.cfg.DisplayName}
	}
	return out
}

// StartURL is the address that begins a sign-in with the named provider
// and returns to returnTo afterwards.
func StartURL(provider, returnTo string) string {
	return StartPath + "?" + url.Values{"provider": {provider}, "rd": {returnTo}}.Encode()
}

// SignInURL is the sign-in page that returns to returnTo afterwards.
func SignInURL(returnTo string) string {
	return SignInPath + "?" + url.Values{"rd": {returnTo}}.Encode()
}

// ctxIDP returns a context whose HTTP calls to IdPs use the SSO's client.
func (s *SSO) ctxIDP(ctx context.Context) context.Context {
	return oidc.ClientContext(ctx, s.client)
}

// connect runs discovery for p once, and again after a failure. Calls
// that arrive during a discovery wait for it; no lock is held while it
// talks to the IdP.
func (s *SSO) connect(ctx context.Context, p *oidcProvider) (*idpConn, error) {
	if c := p.conn.Load(); c != nil {
		return c, nil
	}
	v, err, _ := s.discoveries.Do(p.cfg.Name, func() (any, error) {
		if c := p.conn.Load(); c != nil {
			return c, nil
		}
		if last := p.lastErr.Load(); last != nil && s.now().Sub(*last) < rediscoverAfter {
			return nil, fmt.Errorf("identity provider %s was unreachable moments ago; try again in a few seconds", p.cfg.Name)
		}
		c, err := s.discover(ctx, p)
		if err != nil {
			now := s.now()
			p.lastErr.Store(&now)
			return nil, err
		}
		p.conn.Store(c)
		return c, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*idpConn), nil
}

// discover reads the IdP's discovery document.
func (s *SSO) discover(ctx context.Context, p *oidcProvider) (*idpConn, error) {
	// Discovery outlives a client that gave up waiting: others wait on it.
	dctx, cancel := context.WithTimeout(s.ctxIDP(context.WithoutCancel(ctx)), 15*time.Second)
	defer cancel()
	provider, err := oidc.NewProvider(dctx, p.cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("discover identity provider %s: %w", p.cfg.Name, err)
	}
	var extra struct {
		EndSession string `json:"end_session_endpoint"`
	}
	_ = provider.Claims(&extra)
	return &idpConn{
		oauth: oauth2.Config{
			ClientID:     p.cfg.ClientID,
			ClientSecret: p.cfg.ClientSecret.Reveal(),
			Endpoint:     provider.Endpoint(),
			RedirectURL:  s.publicURL + CallbackPath,
			Scopes:       p.cfg.Scopes,
		},
		verifier: provider.Verifier(&oidc.Config{
			ClientID:             p.cfg.ClientID,
			SupportedSigningAlgs: config.JWTAlgorithms,
			Now:                  s.now,
		}),
		endSession: extra.EndSession,
	}, nil
}

// Start begins a sign-in (GET /oauth2/start?provider=NAME&rd=PATH): it
// seals the state, nonce and PKCE verifier into a short-lived cookie and
// sends the browser to the IdP.
func (s *SSO) Start(w http.ResponseWriter, r *http.Request) {
	noStore(w)
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET")
		s.renderError(w, r, http.StatusMethodNotAllowed, "Sign-in starts with a GET request.")
		return
	}
	q := r.URL.Query()
	p := s.byName[q.Get("provider")]
	if p == nil && len(s.providers) == 1 {
		p = s.providers[0]
	}
	if p == nil {
		s.renderError(w, r, http.StatusBadRequest, "Choose an identity provider to sign in with.")
		return
	}
	conn, err := s.connect(r.Context(), p)
	if err != nil {
		s.onEvent(SSOEvent{Kind: "sign_in_failed", Provider: p.cfg.Name, Err: err})
		s.renderError(w, r, http.StatusBadGateway, "The identity provider "+p.cfg.DisplayName+" cannot be reached right now. Try again in a minute.")
		return
	}
	now := s.now()
	st := signInState{
		State:    randomToken(32),
		Nonce:    randomToken(32),
		Verifier: oauth2.GenerateVerifier(),
		Provider: p.cfg.Name,
		ReturnTo: SafeReturnTo(q.Get("rd")),
		Expires:  now.Add(signInLifetime).Unix(),
	}
	b, _ := json.Marshal(st)
	if _, err := s.jar.set(w, r, s.stateCookie(st.State), CallbackPath, b, now.Add(signInLifetime)); err != nil {
		s.renderError(w, r, http.StatusInternalServerError, "The sign-in could not be started.")
		return
	}
	http.Redirect(w, r, conn.oauth.AuthCodeURL(st.State, oidc.Nonce(st.Nonce), oauth2.S256ChallengeOption(st.Verifier)), http.StatusFound)
}

// Callback completes a sign-in (GET /oauth2/callback): it checks the state
// against the cookie Start set, exchanges the code with the PKCE verifier,
// verifies the ID token (signature, algorithm, iss, aud, exp) and its
// nonce, and starts the session.
func (s *SSO) Callback(w http.ResponseWriter, r *http.Request) {
	noStore(w)
	q := r.URL.Query()
	state := q.Get("state")
	if len(state) < 16 {
		s.renderError(w, r, http.StatusBadRequest, "The sign-in response carries no valid state. Start the sign-in again.")
		return
	}
	name := s.stateCookie(state)
	plain, ok, err := s.jar.get(r, name)
	// A state is good for one callback only.
	s.jar.clear(w, r, name, CallbackPath)
	var st signInState
	switch {
	case !ok:
		s.renderError(w, r, http.StatusBadRequest, "This sign-in was not started in this browser, or it took more than 10 minutes. Start the sign-in again.")
		return
	case err != nil, json.Unmarshal(plain, &st) != nil:
		s.onEvent(SSOEvent{Kind: "sign_in_failed", Err: fmt.Errorf("sign-in state cookie refused: %w", errSealed)})
		s.renderError(w, r, http.StatusBadRequest, "The sign-in state was altered. Start the sign-in again.")
		return
	case subtle.ConstantTimeCompare([]byte(st.State), []byte(state)) != 1:
		s.onEvent(SSOEvent{Kind: "sign_in_failed", Provider: st.Provider, Err: errors.New("state mismatch")})
		s.renderError(w, r, http.StatusBadRequest, "The sign-in response does not belong to the sign-in this browser started. Start the sign-in again.")
		return
	case s.now().Unix() > st.Expires:
		s.renderError(w, r, http.StatusBadRequest, "The sign-in took more than 10 minutes. Start the sign-in again.")
		return
	}
	p := s.byName[st.Provider]
	if p == nil {
		s.renderError(w, r, http.StatusBadRequest, "The identity provider of this sign-in is no longer configured.")
		return
	}
	if e := q.Get("error"); e != "" {
		err := fmt.Errorf("the identity provider answered %s: %s", e, q.Get("error_description"))
		s.onEvent(SSOEvent{Kind: "sign_in_failed", Provider: p.cfg.Name, Err: err})
		s.renderError(w, r, http.StatusForbidden, p.cfg.DisplayName+" did not sign you in ("+e+"). "+q.Get("error_description"))
		return
	}
	sess, err := s.signIn(r.Context(), p, q.Get("code"), st)
	if err != nil {
		s.onEvent(SSOEvent{Kind: "sign_in_failed", Provider: p.cfg.Name, Err: err})
		s.renderError(w, r, http.StatusUnauthorized, "The sign-in with "+p.cfg.DisplayName+" failed: "+err.Error()+".")
		return
	}
	if err := s.writeSession(w, r, sess); err != nil {
		s.onEvent(SSOEvent{Kind: "sign_in_failed", Provider: p.cfg.Name, Subject: sess.identity.Subject, Err: err})
		s.renderError(w, r, http.StatusInternalServerError, "The session could not be stored: "+err.Error()+".")
		return
	}
	s.onEvent(SSOEvent{Kind: "sign_in", Provider: p.cfg.Name, Subject: sess.identity.Subject})
	http.Redirect(w, r, st.ReturnTo, http.StatusSeeOther)
}

// signIn exchanges the code and builds the session from the ID token.
func (s *SSO) signIn(ctx context.Context, p *oidcProvider, code string, st signInState) (*Session, error) {
	if code == "" {
		return nil, errors.New("the response carries no authorization code")
	}
	conn, err := s.connect(ctx, p)
	if err != nil {
		return nil, err
	}
	ctx = s.ctxIDP(ctx)
	tok, err := conn.oauth.Exchange(ctx, code, oauth2.VerifierOption(st.Verifier))
	if err != nil {
		return nil, fmt.Errorf("the code could not be exchanged for tokens (%s)", oauthErrorText(err))
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return nil, errors.New("the identity provider sent no ID token; check that the openid scope is requested")
	}
	idt, err := conn.verifier.Verify(ctx, raw)
	if err != nil {
		return nil, fmt.Errorf("the ID token was refused: %w", err)
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(st.Nonce)) != 1 {
		return nil, errors.New("the ID token's nonce does not match this sign-in")
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return nil, fmt.Errorf("the ID token's claims cannot be read: %w", err)
	}
	now := s.now()
	sess := &Session{
		ID:           randomToken(16),
		Provider:     p.cfg.Name,
		IDToken:      raw,
		RefreshToken: tok.RefreshToken,
		TokenExpiry:  idt.Expiry.Unix(),
		Created:      now.Unix(),
		Expires:      now.Add(s.lifetime).Unix(),
		CSRF:         randomToken(32),
	}
	id, overage, err := s.identify(p, claims, sess)
	if err != nil {
		return nil, err
	}
	if overage {
		s.onEvent(SSOEvent{Kind: "groups_overage", Provider: p.cfg.Name, Subject: id.Subject})
	}
	sess.identity = id
	return sess, nil
}

// identify maps an ID token's claims onto the signed-in person. It also
// says whether the IdP left the groups out because there were too many
// (Entra ID's overage), which the identity's claims then flag.
func (s *SSO) identify(p *oidcProvider, claims map[string]any, sess *Session) (*Identity, bool, error) {
	m := p.cfg.Claims
	parts := make([]string, 0, len(m.Subject))
	for _, c := range m.Subject {
		v, _ := claims[c].(string)
		if v == "" {
			return nil, false, fmt.Errorf("the ID token has no %s claim, which identifies people at %s", c, p.cfg.DisplayName)
		}
		parts = append(parts, v)
	}
	id := &Identity{
		Type:       TypeUser,
		Subject:    *m.SubjectPrefix + strings.Join(parts, "/"),
		Issuer:     p.cfg.Issuer,
		Credential: "session:" + p.cfg.Name,
		Roles:      listClaim(claims[m.Roles]),
	}
	id.Name, _ = claims[m.Name].(string)
	if email, _ := claims[m.Email].(string); email != "" && (p.cfg.TrustEmail || claims["email_verified"] == true) {
		id.Email = email
	}
	for _, g := range listClaim(claims[m.Groups]) {
		if name, ok := p.cfg.GroupNames[g]; ok {
			g = name
		}
		id.Groups = append(id.Groups, g)
	}
	names, _ := claims["_claim_names"].(map[string]any)
	_, overage := names[m.Groups]
	if claims["hasgroups"] == true {
		overage = true
	}
	// The policy sees the ID token's claims, but not the parts that only
	// matter to the token itself; exp is the session's end, which also
	// bounds the tokens minted from it.
	id.Claims = make(map[string]any, len(claims)+2)
	for k, v := range claims {
		switch k {
		case "nonce", "at_hash", "c_hash", "iat", "nbf", "exp", "_claim_names", "_claim_sources":
			continue
		}
		id.Claims[k] = v
	}
	id.Claims["exp"] = float64(sess.Expires)
	id.Claims["idp"] = p.cfg.Name
	if overage {
		id.Claims["groups_overage"] = true
	}
	return id, overage, nil
}

// writeSession seals the session into its cookies and sets the CSRF cookie
// that the gateway's own pages read.
func (s *SSO) writeSession(w http.ResponseWriter, r *http.Request, sess *Session) error {
	b, err := json.Marshal(sess)
	if err != nil {
		return err
	}
	expires := time.Unix(sess.Expires, 0)
	joined, err := s.jar.set(w, r, s.cookieName, "/", b, expires)
	if err != nil {
		return err
	}
	csrf := s.jar.cookie(s.csrfCookie(), "/", sess.CSRF, int(time.Until(expires).Seconds()))
	csrf.HttpOnly = false // same-origin scripts send it back in X-CSRF-Token
	http.SetCookie(w, csrf)
	s.sessions.Add(sha256.Sum256([]byte(joined)), &cachedSession{session: sess})
	return nil
}

// clearSession expires the session's cookies.
func (s *SSO) clearSession(w http.ResponseWriter, r *http.Request) {
	s.jar.clear(w, r, s.cookieName, "/")
	http.SetCookie(w, s.jar.cookie(s.csrfCookie(), "/", "", -1))
}

func (s *SSO) stateCookie(state string) string { return s.cookieName + "_signin_" + state[:12] }
func (s *SSO) csrfCookie() string              { return s.cookieName + "_csrf" }

// sessionKey is the context key of the request's session state.
type sessionKey struct{}

// sessionState is what Middleware found in the request's cookies.
type sessionState struct {
	session *Session
	ended   error // the cookie was there but the session is over or refused
}

// SessionEnded is a session cookie that no longer signs anybody in: the
// session is over, its refresh failed, or the cookie was refused. It counts
// as no credential, so browsers are sent to sign in again.
type SessionEnded struct {
	Reason string
}

func (e *SessionEnded) Error() string { return "session ended: " + e.Reason }

// Is makes an ended session match ErrNoCredential.
func (e *SessionEnded) Is(target error) bool { return target == ErrNoCredential }

// CSRFRefusal is a cookie-authenticated call refused by the CSRF check.
type CSRFRefusal struct {
	Reason string
}

func (e *CSRFRefusal) Error() string { return "cross-site request refused: " + e.Reason }

// Is makes a CSRF refusal match ErrCSRF.
func (e *CSRFRefusal) Is(target error) bool { return target == ErrCSRF }

// Middleware opens the request's session cookie, renews the ID token
// when it is about to expire, ends the session when it is over, and keeps
// the result for Authenticate and the portal. A request with a bearer
// credential is passed on untouched: the credential it chose wins.
func (s *SSO) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if BearerToken(r) != "" {
			next.ServeHTTP(w, r)
			return
		}
		joined, ok, err := s.jar.read(r, s.cookieName)
		if !ok {
			next.ServeHTTP(w, r)
			return
		}
		st := &sessionState{}
		if err == nil {
			st.session, err = s.session(w, r, joined)
		}
		if err != nil {
			var ended *SessionEnded
			if !errors.As(err, &ended) {
				s.onEvent(SSOEvent{Kind: "session_refused", Err: err})
				ended = &SessionEnded{Reason: "the session cookie was refused (" + err.Error() + "); sign in again"}
			}
			st.session, st.ended = nil, ended
			s.clearSession(w, r)
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), sessionKey{}, st)))
	})
}

// SessionFrom returns the session Middleware found for the request, or nil.
func SessionFrom(ctx context.Context) *Session {
	st, _ := ctx.Value(sessionKey{}).(*sessionState)
	if st == nil {
		return nil
	}
	return st.session
}

// Authenticate returns the identity of a session-cookie call. A call that
// changes state must also pass CheckCSRF with the X-CSRF-Token header.
func (s *SSO) Authenticate(r *http.Request) (*Identity, error) {
	st, _ := r.Context().Value(sessionKey{}).(*sessionState)
	switch {
	case st == nil:
		return nil, ErrNoCredential
	case st.ended != nil:
		return nil, st.ended
	}
	if err := s.CheckCSRF(r, st.session, r.Header.Get(CSRFHeader)); err != nil {
		return nil, err
	}
	return st.session.Identity(), nil
}

// CheckCSRF refuses a cookie-authenticated request that changes state
// unless the browser says it comes from the gateway's own origin (Origin
// or Sec-Fetch-Site) and it carries the session's CSRF token.
func (s *SSO) CheckCSRF(r *http.Request, sess *Session, token string) error {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return nil
	}
	site, origin := r.Header.Get("Sec-Fetch-Site"), r.Header.Get("Origin")
	switch {
	case site != "" && site != "same-origin":
		return &CSRFRefusal{Reason: "the request came from another site (Sec-Fetch-Site: " + site + ")"}
	case origin != "" && origin != s.origin:
		return &CSRFRefusal{Reason: "the request came from another origin (" + origin + ")"}
	case site == "" && origin == "":
		return &CSRFRefusal{Reason: "a cookie-authenticated request must come from a browser on this gateway's pages (it sent neither Origin nor Sec-Fetch-Site); programs should send a bearer token instead"}
	case token == "" || subtle.ConstantTimeCompare([]byte(token), []byte(sess.CSRF)) != 1:
		return &CSRFRefusal{Reason: "the " + CSRFHeader + " header is missing or does not match the session"}
	}
	return nil
}

// session opens a joined session cookie, from the cache when it was seen
// before, and renews or ends it as its times say.
func (s *SSO) session(w http.ResponseWriter, r *http.Request, joined string) (*Session, error) {
	key := sha256.Sum256([]byte(joined))
	var sess *Session
	if c, ok := s.sessions.Get(key); ok {
		sess = c.session
		if c.reissue {
			if err := s.writeSession(w, r, sess); err != nil {
				return nil, err
			}
		}
	} else {
		plain, err := s.jar.open(s.cookieName, joined)
		if err != nil {
			return nil, err
		}
		sess = &Session{}
		if err := json.Unmarshal(plain, sess); err != nil {
			return nil, errSealed
		}
		p := s.byName[sess.Provider]
		if p == nil {
			return nil, &SessionEnded{Reason: "its identity provider " + sess.Provider + " is no longer configured; sign in again"}
		}
		claims, err := tokenClaims(sess.IDToken)
		if err != nil {
			return nil, err
		}
		if sess.identity, _, err = s.identify(p, claims, sess); err != nil {
			return nil, err
		}
		s.sessions.Add(key, &cachedSession{session: sess})
	}
	return s.renew(w, r, sess, key)
}

// renew ends a session that is over and refreshes the ID token of one
// whose token is about to expire.
func (s *SSO) renew(w http.ResponseWriter, r *http.Request, sess *Session, key [32]byte) (*Session, error) {
	now := s.now()
	if now.Unix() >= sess.Expires {
		s.sessions.Remove(key)
		return nil, &SessionEnded{Reason: "the session is over (it lasts " + s.lifetime.String() + " at most); sign in again"}
	}
	expiry := time.Unix(sess.TokenExpiry, 0)
	if now.Before(expiry.Add(-s.refreshBefore)) {
		return sess, nil
	}
	if sess.RefreshToken == "" {
		if now.Before(expiry) {
			return sess, nil
		}
		s.sessions.Remove(key)
		return nil, &SessionEnded{Reason: "the sign-in expired and the identity provider gave no refresh token; sign in again"}
	}
	v, err, _ := s.refreshes.Do(sess.ID, func() (any, error) { return s.refresh(r.Context(), sess) })
	if err != nil {
		s.sessions.Remove(key)
		s.onEvent(SSOEvent{Kind: "refresh_failed", Provider: sess.Provider, Subject: sess.identity.Subject, Err: err})
		return nil, &SessionEnded{Reason: "the identity provider did not renew the sign-in; sign in again"}
	}
	renewed := v.(*Session)
	// Calls already on their way with the old cookie get the new one.
	s.sessions.Add(key, &cachedSession{session: renewed, reissue: true})
	if err := s.writeSession(w, r, renewed); err != nil {
		return nil, err
	}
	return renewed, nil
}

// refresh renews the session's ID token with its refresh token.
func (s *SSO) refresh(ctx context.Context, sess *Session) (*Session, error) {
	p := s.byName[sess.Provider]
	// Every call waiting on this refresh shares it, so one client going
	// away must not cancel it.
	ctx, cancel := context.WithTimeout(s.ctxIDP(context.WithoutCancel(ctx)), 20*time.Second)
	defer cancel()
	conn, err := s.connect(ctx, p)
	if err != nil {
		return nil, err
	}
	tok, err := conn.oauth.TokenSource(ctx, &oauth2.Token{RefreshToken: sess.RefreshToken, Expiry: time.Unix(1, 0)}).Token()
	if err != nil {
		return nil, fmt.Errorf("refresh: %s", oauthErrorText(err))
	}
	renewed := *sess
	if tok.RefreshToken != "" {
		renewed.RefreshToken = tok.RefreshToken
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		// Some IdPs renew only the access token; the identity stays as
		// it was, for as long as the IdP vouches for the access token.
		if tok.Expiry.IsZero() {
			return nil, errors.New("refresh: the identity provider sent neither an ID token nor an expiry")
		}
		renewed.TokenExpiry = tok.Expiry.Unix()
		s.onEvent(SSOEvent{Kind: "refresh", Provider: p.cfg.Name, Subject: sess.identity.Subject})
		return &renewed, nil
	}
	idt, err := conn.verifier.Verify(ctx, raw)
	if err != nil {
		return nil, fmt.Errorf("refresh: the new ID token was refused: %w", err)
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return nil, err
	}
	old, _ := tokenClaims(sess.IDToken)
	if claims["sub"] != old["sub"] {
		return nil, errors.New("refresh: the new ID token names another subject")
	}
	renewed.IDToken = raw
	renewed.TokenExpiry = idt.Expiry.Unix()
	id, overage, err := s.identify(p, claims, &renewed)
	if err != nil {
		return nil, err
	}
	if overage {
		s.onEvent(SSOEvent{Kind: "groups_overage", Provider: p.cfg.Name, Subject: id.Subject})
	}
	renewed.identity = id
	s.onEvent(SSOEvent{Kind: "refresh", Provider: p.cfg.Name, Subject: id.Subject})
	return &renewed, nil
}

// SignOut ends the session (POST /oauth2/sign_out with the csrf form
// field) and, when the IdP publishes an end_session_endpoint, sends the
// browser there to end the IdP's session too.
func (s *SSO) SignOut(w http.ResponseWriter, r *http.Request) {
	noStore(w)
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		s.renderError(w, r, http.StatusMethodNotAllowed, "Sign out with the Sign out button.")
		return
	}
	sess := SessionFrom(r.Context())
	if sess == nil {
		s.clearSession(w, r)
		http.Redirect(w, r, SignedOutPath, http.StatusSeeOther)
		return
	}
	if err := s.CheckCSRF(r, sess, r.PostFormValue("csrf")); err != nil {
		s.renderError(w, r, http.StatusForbidden, "The sign-out was refused: "+err.Error()+".")
		return
	}
	s.clearSession(w, r)
	s.onEvent(SSOEvent{Kind: "sign_out", Provider: sess.Provider, Subject: sess.identity.Subject})
	target := SignedOutPath
	if p := s.byName[sess.Provider]; p != nil {
		if conn, err := s.connect(r.Context(), p); err == nil && conn.endSession != "" {
			if u, err := url.Parse(conn.endSession); err == nil {
				q := u.Query()
				q.Set("id_token_hint", sess.IDToken)
				q.Set("post_logout_redirect_uri", s.publicURL+SignedOutPath)
				q.Set("client_id", p.cfg.ClientID)
				u.RawQuery = q.Encode()
				target = u.String()
			}
		}
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
}

// SafeReturnTo returns rd when it is a path on this gateway, and the
// portal's home otherwise: never another host, whatever the spelling
// (//host, /\host, encoded slashes or backslashes, schemes, control
// characters), and never the sign-in flow itself.
func SafeReturnTo(rd string) string {
	if safeReturnTo(rd) {
		return rd
	}
	return HomePath
}

func safeReturnTo(rd string) bool {
	if rd == "" || len(rd) > 2048 {
		return false
	}
	// Browsers decode some escapes before deciding where a path leads, so
	// every decoding of the value must stay a local path too.
	for v := rd; ; {
		if v == "" || v[0] != '/' || strings.HasPrefix(v, "//") || strings.ContainsRune(v, '\\') {
			return false
		}
		for _, c := range v {
			if c < 0x20 || c == 0x7f {
				return false
			}
		}
		dec, err := url.PathUnescape(v)
		if err != nil {
			return false
		}
		if dec == v {
			break
		}
		v = dec
	}
	u, err := url.Parse(rd)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" {
		return false
	}
	return !strings.HasPrefix(u.Path, "/oauth2/")
}

// tokenClaims reads the claims of a JWT that was verified before it was
// sealed into a session.
func tokenClaims(raw string) (map[string]any, error) {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return nil, errSealed
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, errSealed
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		return nil, errSealed
	}
	return claims, nil
}

// oauthErrorText says why a token endpoint refused, without its body,
// which may echo what was sent.
func oauthErrorText(err error) string {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		if re.ErrorCode != "" {
			return re.ErrorCode
		}
		if re.Response != nil {
			return re.Response.Status
		}
	}
	// Transport errors name the endpoint and the cause, never a token.
	return "the identity provider could not be reached: " + err.Error()
}

func randomToken(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func noStore(w http.ResponseWriter) {
	w.Header().Set("Cache-Control", "no-store")
}
