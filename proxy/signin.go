package proxy

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.uber.org/zap"

	"portcullis/authn"
	"portcullis/portal"
)

// newPortal builds the signed-in pages over the gateway's policy and
// minter, and has the sign-in flow answer browsers with its pages.
func (s *Server) newPortal() *portal.Portal {
	var formTargets []string
	for _, p := range s.cfg.SSO.Providers {
		if u, err := url.Parse(p.Issuer); err == nil {
			formTargets = append(formTargets, u.Scheme+"://"+u.Host)
		}
	}
	o := portal.Options{
		SSO:         s.sso,
		Models:      s,
		Usage:       s,
		PublicURL:   s.cfg.SSO.PublicURL,
		FormTargets: formTargets,
		OnMint: func(r *http.Request, id *authn.Identity, m *authn.Minted) {
			log := s.log
			if c, ok := r.Context().Value(pageCall{}).(*call); ok {
				log = c.logger()
			}
			log.Info("token minted in the portal", zap.String("subject", id.Subject), zap.String("jti", m.ID), zap.Time("expires", m.Expires))
		},
	}
	if s.minter != nil {
		o.Minter = s.minter
	}
	p := portal.New(o)
	s.sso.RenderErrorsWith(p.RenderError)
	return p
}

// signInRoutes adds the sign-in flow and the portal. Each page view and
// step of the flow leaves an audit record like any other call.
func (s *Server) signInRoutes(mux *http.ServeMux) {
	pages := s.portal.Handler()
	for path, h := range map[string]http.HandlerFunc{
		authn.StartPath:       s.sso.Start,
		authn.CallbackPath:    s.sso.Callback,
		authn.SignOutPath:     s.sso.SignOut,
		authn.SignInPath:      pages.ServeHTTP,
		authn.SignedOutPath:   pages.ServeHTTP,
		authn.HomePath:        pages.ServeHTTP,
		portal.TokensPath:     pages.ServeHTTP,
		portal.StylesheetPath: pages.ServeHTTP,
	} {
		mux.HandleFunc(path, s.endpoint("", s.page(h)))
	}
}

// page adapts a browser page to the audited call: the record names the
// signed-in person, if any.
func (s *Server) page(h http.HandlerFunc) handlerFunc {
	return func(c *call) {
		if sess := authn.SessionFrom(c.r.Context()); sess != nil {
			c.setIdentity(sess.Identity())
		}
		h(c.w, c.r.WithContext(context.WithValue(c.r.Context(), pageCall{}, c)))
	}
}

// pageCall is the context key of a page's call, for its log lines.
type pageCall struct{}

// AllowedModels lists the models the policy lets id use, as GET
// /v1/models would for the same request; the portal shows them.
func (s *Server) AllowedModels(r *http.Request, id *authn.Identity) ([]string, error) {
	return s.visibleModels(r.Context(), id, s.clientIP(r), r.UserAgent(), time.Now())
}

// browserNavigation says whether a request is a person opening a page,
// whom a missing credential sends to sign in rather than to a 401.
func browserNavigation(r *http.Request) bool {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	if mode := r.Header.Get("Sec-Fetch-Mode"); mode != "" && mode != "navigate" {
		return false
	}
	return strings.Contains(r.Header.Get("Accept"), "text/html")
}
