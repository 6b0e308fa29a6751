package proxy

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"portcullis/audit"
	"portcullis/authn"
)

// call is the state of one request on its way through the gateway; its
// record is written when the handler returns, whatever happened.
type call struct {
	w     *responseWriter
	r     *http.Request
	rec   audit.Record
	start time.Time
	// anthropicErrors writes errors in Anthropic's shape (for /v1/messages).
	anthropicErrors bool
	// span is the call's server span; a no-op span when it is not traced.
	span trace.Span
	// transcript collects the content when the decision says log_content.
	transcript *transcript
	// delivered counts the content events a stream sent the client.
	delivered int
	// spend is the call's reservation and usage (spend.go).
	spend spend
	// log is the gateway's log; withIDs is it with the call's ids, made
	// on the call's first log line.
	log, withIDs *zap.Logger
}

// logger is the application log with the call's request id and, when it
// has one, trace id on every line.
func (c *call) logger() *zap.Logger {
	if c.withIDs == nil {
		if c.rec.TraceID == "" {
			c.withIDs = c.log.With(zap.String("request_id", c.rec.RequestID))
		} else {
			c.withIDs = c.log.With(zap.String("request_id", c.rec.RequestID), zap.String("trace_id", c.rec.TraceID))
		}
	}
	return c.withIDs
}

// handlerFunc handles one call of an endpoint.
type handlerFunc func(c *call)

// endpoint wraps a handler with what every audited endpoint shares: a
// request id, method check, timing, and the audit record.
func (s *Server) endpoint(method string, h handlerFunc) http.HandlerFunc {
	return s.wrap(method, false, h)
}

// anthropicEndpoint is endpoint for Anthropic's API: every error the call
// gets, the wrapper's own (405, 503) included, is in Anthropic's shape.
func (s *Server) anthropicEndpoint(method string, h handlerFunc) http.HandlerFunc {
	return s.wrap(method, true, h)
}

func (s *Server) wrap(method string, anthropicErrors bool, h handlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s.inflight.Add(1)
		defer s.inflight.Done()
		c := &call{
			w:               &responseWriter{ResponseWriter: w},
			r:               r,
			start:           time.Now(),
			anthropicErrors: anthropicErrors,
			log:             s.log,
		}
		c.w.start = c.start
		c.rec = audit.Record{
			Time:      c.start,
			RequestID: newRequestID(),
			ClientIP:  s.clientIP(r),
			UserAgent: r.UserAgent(),
			Method:    r.Method,
			Endpoint:  r.URL.Path,
		}
		w.Header().Set("X-Request-Id", c.rec.RequestID)
		s.startTrace(c)
		defer s.finish(c)
		if method != "" && r.Method != method {
			s.identify(c)
			w.Header().Set("Allow", method)
			c.fail(http.StatusMethodNotAllowed, "method_not_allowed", "invalid_request_error", "method_not_allowed", "",
				r.Method+" is not allowed on "+r.URL.Path+"; use "+method)
			return
		}
		if s.auditReady != nil && s.auditReady() != nil {
			s.identify(c)
			w.Header().Set("Retry-After", "1")
			c.fail(http.StatusServiceUnavailable, "audit_unavailable", "server_error", "audit_unavailable", "",
				"the gateway cannot write its audit log, so it refuses calls until it can; try again shortly")
			return
		}
		h(c)
	}
}

func (s *Server) finish(c *call) {
	c.rec.Latency = time.Since(c.start)
	c.rec.TimeToFirstByte = c.w.ttfb
	c.rec.Status = c.w.status
	if c.rec.Status == 0 {
		c.rec.Status = http.StatusOK
	}
	if c.transcript != nil {
		c.rec.Content = c.transcript.seal(s.cfg.Audit.ContentMaxBytes)
	}
	s.settle(c)
	s.endTrace(c)
	s.audit.Write(&c.rec)
	if s.observer != nil {
		s.observer.ObserveCall(&c.rec)
	}
}

// setIdentity records who is calling.
func (c *call) setIdentity(id *authn.Identity) {
	c.rec.Identity = audit.Identity{
		Type:       string(id.Type),
		Subject:    id.Subject,
		Groups:     id.Groups,
		Credential: id.Credential,
	}
}

// apiError is OpenAI's error object.
type apiError struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}

// fail answers with an error in OpenAI's shape and records its class.
// param and code may be empty.
func (c *call) fail(status int, class, errType, code, param, message string) {
	c.rec.ErrorClass = class
	c.rec.Error = message
	if c.anthropicErrors {
		writeAnthropicError(c.w, status, message, c.rec.RequestID)
		return
	}
	writeError(c.w, status, errType, code, param, message)
}

func writeError(w http.ResponseWriter, status int, errType, code, param, message string) {
	e := apiError{Message: message, Type: errType}
	if code != "" {
		e.Code = &code
	}
	if param != "" {
		e.Param = &param
	}
	body := marshalJSON(struct {
		Error apiError `json:"error"`
	}{e})
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	w.Write(body)
}

// bodyReadTimeout bounds how long reading one request body may take.
const bodyReadTimeout = 2 * time.Minute

// readBody reads the whole request body, refusing one over the limit. The
// gateway reads bodies whole before forwarding: the policy needs them, and
// Go's server would otherwise tear down a proxied stream mid-way.
func (s *Server) readBody(c *call) ([]byte, bool) {
	limit := s.cfg.Server.MaxBodyBytes
	if c.r.ContentLength > limit {
		c.fail(http.StatusRequestEntityTooLarge, "request_too_large", "invalid_request_error", "request_too_large", "",
			"the request body is "+strconv.FormatInt(c.r.ContentLength, 10)+" bytes; the limit is "+strconv.FormatInt(limit, 10))
		return nil, false
	}
	size := c.r.ContentLength
	if size < 0 || size > 1<<20 {
		size = 64 << 10
	}
	buf := make([]byte, 0, size+1)
	// A client that trickles its body must not hold a request open for
	// ever; the deadline is lifted once the body is in, so the response
	// (a long stream, say) is not bound by it.
	rc := http.NewResponseController(c.w)
	_ = rc.SetReadDeadline(time.Now().Add(bodyReadTimeout))
	body, err := readAll(http.MaxBytesReader(c.w, c.r.Body, limit), buf)
	_ = rc.SetReadDeadline(time.Time{})
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		c.fail(http.StatusRequestEntityTooLarge, "request_too_large", "invalid_request_error", "request_too_large", "",
			"the request body is larger than the limit of "+strconv.FormatInt(limit, 10)+" bytes")
		return nil, false
	case err != nil:
		c.fail(http.StatusBadRequest, "bad_request", "invalid_request_error", "body_read_failed", "", "could not read the request body: "+err.Error())
		return nil, false
	}
	return body, true
}

// readAll is io.ReadAll into a buffer sized from Content-Length.
func readAll(r io.Reader, b []byte) ([]byte, error) {
	for {
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err != nil {
			if errors.Is(err, io.EOF) {
				return b, nil
			}
			return b, err
		}
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
	}
}

// authenticate identifies the caller or answers 401.
func (s *Server) authenticate(c *call) (*authn.Identity, bool) {
	began := time.Now()
	span := s.startSpan(c, "authenticate", trace.SpanKindInternal)
	id, err := s.authn.Authenticate(c.r)
	c.rec.AuthLatency = time.Since(began)
	endAuthnSpan(span, id, err)
	if err == nil {
		c.setIdentity(id)
		return id, true
	}
	h := c.w.Header()
	if errors.Is(err, authn.ErrNoCredential) {
		if s.sso != nil && browserNavigation(c.r) {
			c.rec.ErrorClass, c.rec.Error = "authentication", "not signed in: sent to sign in"
			http.Redirect(c.w, c.r, authn.SignInURL(c.r.URL.RequestURI()), http.StatusFound)
			return nil, false
		}
		h.Set("WWW-Authenticate", `Bearer realm="portcullis"`)
		msg := "no credential: send your Portcullis API key as \"Authorization: Bearer <key>\" or \"x-api-key: <key>\""
		if ended := (*authn.SessionEnded)(nil); errors.As(err, &ended) {
			msg = "your browser session ended: " + ended.Reason
		}
		c.fail(http.StatusUnauthorized, "authentication", "invalid_request_error", "missing_api_key", "", msg)
		return nil, false
	}
	if refusal := (*authn.CSRFRefusal)(nil); errors.As(err, &refusal) {
		c.fail(http.StatusForbidden, "csrf", "invalid_request_error", "csrf_failed", "",
			refusal.Error()+"; scripts on the gateway's pages send the session's CSRF cookie back in "+authn.CSRFHeader+", programs send a bearer token")
		return nil, false
	}
	reason := "the API key is unknown or revoked"
	if ref := (*authn.Refusal)(nil); errors.As(err, &ref) {
		reason = ref.Reason // says why, and never holds a secret
	}
	h.Set("WWW-Authenticate", `Bearer realm="portcullis", error="invalid_token", error_description="`+headerSafe(reason)+`"`)
	c.fail(http.StatusUnauthorized, "authentication", "invalid_request_error", "invalid_api_key", "",
		"the credential was not accepted: "+reason)
	return nil, false
}

// identify records the caller, if the credential is good, on a call that
// is refused for another reason, so its record still says who it was.
func (s *Server) identify(c *call) {
	if id, err := s.authn.Authenticate(c.r); err == nil {
		c.setIdentity(id)
	}
}

func (s *Server) notFound(c *call) {
	if s.sso != nil && c.r.URL.Path == "/" && browserNavigation(c.r) {
		http.Redirect(c.w, c.r, authn.HomePath, http.StatusFound)
		return
	}
	s.identify(c)
	c.fail(http.StatusNotFound, "not_found", "invalid_request_error", "unknown_url", "",
		"unknown request URL: "+c.r.Method+" "+c.r.URL.Path)
}

func newRequestID() string {
	var b [12]byte
	rand.Read(b[:])
	return "req_" + hex.EncodeToString(b[:])
}

// clientIP is the caller's address: the connection's peer or, when the
// peer is a trusted proxy, the nearest address in X-Forwarded-For that is
// not a trusted proxy itself — the right-most untrusted hop, which a client
// cannot forge by sending the header itself.
func (s *Server) clientIP(r *http.Request) string {
	peer := r.RemoteAddr
	if host, _, err := net.SplitHostPort(peer); err == nil {
		peer = host
	}
	if len(s.trustedProxies) == 0 || !s.trustedProxy(peer) {
		return peer
	}
	var hops []string
	for _, v := range r.Header.Values("X-Forwarded-For") {
		hops = append(hops, strings.Split(v, ",")...)
	}
	for i := len(hops) - 1; i >= 0; i-- {
		hop := strings.TrimSpace(hops[i])
		addr, err := netip.ParseAddr(hop)
		if err != nil {
			// A malformed hop ends what can be believed.
			return peer
		}
		if !s.trustedProxy(hop) {
			return addr.Unmap().String()
		}
		peer = addr.Unmap().String()
	}
	return peer
}

func (s *Server) trustedProxy(ip string) bool {
	addr, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	addr = addr.Unmap()
	for _, p := range s.trustedProxies {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// responseWriter records the status and when the first body byte went out.
type responseWriter struct {
	http.ResponseWriter
	start   time.Time
	status  int
	ttfb    time.Duration
	written int64
}

func (w *responseWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *responseWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if w.written == 0 && len(b) > 0 {
		w.ttfb = time.Since(w.start)
	}
	n, err := w.ResponseWriter.Write(b)
	w.written += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the connection to flush it.
func (w *responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
