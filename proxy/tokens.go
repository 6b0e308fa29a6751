package proxy

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.uber.org/zap"
)

// tokenRoutes adds the endpoints of gateway-minted tokens when minting is
// configured: POST /v1/tokens and GET /.well-known/jwks.json.
func (s *Server) tokenRoutes(mux *http.ServeMux) {
	if s.minter == nil {
		return
	}
	mux.HandleFunc("/v1/tokens", s.endpoint(http.MethodPost, s.mintToken))
	mux.HandleFunc("/.well-known/jwks.json", s.jwks)
}

// mintRequest is the body of POST /v1/tokens; every field is optional.
type mintRequest struct {
	// Lifetime is a Go duration ("15m"); ExpiresIn is the same in seconds.
	Lifetime  string   `json:"lifetime"`
	ExpiresIn int64    `json:"expires_in"`
	Models    []string `json:"models"`
}

// mintResponse is the answer of POST /v1/tokens, shaped like an OAuth 2
// token response with the token's id added for revocation.
type mintResponse struct {
	AccessToken string   `json:"access_token"`
	TokenType   string   `json:"token_type"`
	ExpiresIn   int64    `json:"expires_in"`
	ExpiresAt   int64    `json:"expires_at"`
	ID          string   `json:"id"`
	Models      []string `json:"models,omitempty"`
}

// mintToken serves POST /v1/tokens: the caller gets a short-lived token of
// its own identity, optionally narrowed to some models.
func (s *Server) mintToken(c *call) {
	id, ok := s.authenticate(c)
	if !ok {
		return
	}
	body, ok := s.readBody(c)
	if !ok {
		return
	}
	var req mintRequest
	if len(strings.TrimSpace(string(body))) > 0 {
		dec := json.NewDecoder(strings.NewReader(string(body)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			c.fail(http.StatusBadRequest, "bad_request", "invalid_request_error", "invalid_request", "",
				"the body must be a JSON object with optional fields lifetime (like \"15m\"), expires_in (seconds) and models: "+err.Error())
			return
		}
	}
	var lifetime time.Duration
	switch {
	case req.Lifetime != "" && req.ExpiresIn != 0:
		c.fail(http.StatusBadRequest, "bad_request", "invalid_request_error", "invalid_request", "lifetime", "give lifetime or expires_in, not both")
		return
	case req.Lifetime != "":
		d, err := time.ParseDuration(req.Lifetime)
		if err != nil || d <= 0 {
			c.fail(http.StatusBadRequest, "bad_request", "invalid_request_error", "invalid_request", "lifetime",
				strconv.Quote(req.Lifetime)+" is not a positive duration; write it like 15m or 1h")
			return
		}
		lifetime = d
	case req.ExpiresIn < 0:
		c.fail(http.StatusBadRequest, "bad_request", "invalid_request_error", "invalid_request", "expires_in", "expires_in must be a positive number of seconds")
		return
	default:
		lifetime = time.Duration(req.ExpiresIn) * time.Second
	}
	for _, m := range req.Models {
		if _, known := s.routes[m]; !known {
			if _, off := s.disabled[m]; !off {
				c.fail(http.StatusBadRequest, "bad_request", "invalid_request_error", "model_not_found", "models",
					"the model "+strconv.Quote(m)+" does not exist on this gateway")
				return
			}
		}
	}
	minted, err := s.minter.Mint(id, lifetime, req.Models, time.Now())
	if err != nil {
		c.fail(http.StatusBadRequest, "bad_request", "invalid_request_error", "invalid_request", "", err.Error())
		return
	}
	c.logger().Info("token minted", zap.String("subject", id.Subject),
		zap.String("jti", minted.ID), zap.Time("expires", minted.Expires))
	resp := mintResponse{
		AccessToken: minted.Token,
		TokenType:   "Bearer",
		ExpiresIn:   int64(time.Until(minted.Expires).Seconds()),
		ExpiresAt:   minted.Expires.Unix(),
		ID:          minted.ID,
		Models:      req.Models,
	}
	b := marshalJSON(resp)
	h := c.w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	c.w.WriteHeader(http.StatusOK)
	c.w.Write(b)
}

// jwks serves the public keys of minted tokens, for services that verify
// them themselves.
func (s *Server) jwks(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, http.StatusMethodNotAllowed, "invalid_request_error", "method_not_allowed", "", r.Method+" is not allowed; use GET")
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/jwk-set+json")
	h.Set("Cache-Control", "public, max-age=300")
	w.Write(s.minter.JWKS())
}

// headerSafe keeps a description fit for a quoted header parameter:
// printable ASCII without quotes or backslashes.
func headerSafe(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			b[i] = '\''
		}
	}
	return string(b)
}
