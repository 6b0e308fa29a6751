// Package proxy is the gateway's HTTP server: its endpoints and the request
// path every call takes — authenticate, decode, decide, route, forward,
// relay, audit — including streaming and client-disconnect handling.
package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"portcullis/audit"
	"portcullis/authn"
	"portcullis/authz"
	"portcullis/config"
	"portcullis/portal"
	"portcullis/usage"
)

// Server is the gateway. Build it with New, then call Serve.
type Server struct {
	cfg    *config.Config
	log    *zap.Logger
	authn  authn.Authenticator
	policy *authz.Engine
	audit  Auditor
	minter *authn.Minter // nil: minting is off
	sso    *authn.SSO    // nil: browser sign-in is off
	portal *portal.Portal
	meter  *usage.Meter // nil: limits are only audited
	// trustedProxies are the load balancers whose X-Forwarded-For is believed.
	trustedProxies []netip.Prefix
	routes         map[string]*router
	disabled       map[string]string // model name → why its provider is off
	models         []string          // enabled model names, in config order
	statuses       []providerStatus
	// clock is the time cooldowns go by; tests move it.
	clock   clock
	started time.Time
	version string

	ready    atomic.Bool
	cutting  atomic.Bool // the shutdown grace period is over
	inflight sync.WaitGroup
	handler  http.Handler

	// auditReady, when the Auditor has one, says whether calls may proceed
	// (a fail-closed audit sink that cannot write refuses them).
	auditReady func() error
	observer   Observer     // nil: none
	tracer     trace.Tracer // nil: tracing off
}

// Auditor receives one record per call. An Auditor that also has an
// Available() error method is asked before each call, and the call is
// refused with 503 while it returns an error.
type Auditor interface {
	Write(*audit.Record)
}

// Options are what New needs; all are required but Version.
type Options struct {
	Config        *config.Config
	Logger        *zap.Logger
	Authenticator authn.Authenticator
	Policy        *authz.Engine
	Audit         Auditor
	Version       string
	// Minter, when set, serves POST /v1/tokens and /.well-known/jwks.json.
	Minter *authn.Minter
	// Observer, when set, is shown every call's record after it is
	// written, for metrics.
	Observer Observer
	// SSO, when set, serves browser sign-in (/oauth2/...) and the portal
	// (/portal/), and lets session cookies authenticate calls. The
	// Authenticator should include it, last.
	SSO *authn.SSO
	// Tracer, when set, traces every call (trace.go). Zero value: tracing
	// off, though a caller's traceparent still gives the record its trace id.
	Tracer trace.Tracer
	// Meter, when set, enforces the decisions' budgets and rate limits and
	// prices every call (spend.go). Zero value: limits are only audited.
	Meter *usage.Meter
}

// Observer is told about every call once it ended. The metrics package
// implements it, so that the proxy needs no metrics library.
type Observer interface {
	ObserveCall(*audit.Record)
}

// New wires the gateway from its parts and the configuration.
func New(o Options) (*Server, error) {
	s := &Server{
		cfg:     o.Config,
		log:     o.Logger,
		authn:   o.Authenticator,
		policy:  o.Policy,
		audit:   o.Audit,
		minter:  o.Minter,
		started: time.Now(),
		version: o.Version,
	}
	s.observer = o.Observer
	s.tracer = o.Tracer
	s.meter = o.Meter
	for _, cidr := range o.Config.Server.TrustedProxies {
		p, err := netip.ParsePrefix(cidr)
		if err != nil {
			return nil, fmt.Errorf("server.trusted_proxies: %w", err)
		}
		s.trustedProxies = append(s.trustedProxies, p.Masked())
	}
	if a, ok := o.Audit.(interface{ Available() error }); ok {
		s.auditReady = a.Available
	}
	if err := s.buildRoutes(); err != nil {
		return nil, err
	}
	if o.SSO != nil {
		s.sso = o.SSO
		s.portal = s.newPortal()
	}
	s.handler = s.routesMux()
	s.ready.Store(true)
	return s, nil
}

// Handler returns the gateway's HTTP handler.
func (s *Server) Handler() http.Handler { return s.handler }

func (s *Server) routesMux() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/chat/completions", s.endpoint(http.MethodPost, s.chatCompletions))
	mux.HandleFunc("/v1/messages", s.anthropicEndpoint(http.MethodPost, s.messages))
	mux.HandleFunc("/v1/messages/count_tokens", s.anthropicEndpoint(http.MethodPost, s.countTokens))
	mux.HandleFunc("/v1/embeddings", s.endpoint(http.MethodPost, s.embeddings))
	mux.HandleFunc("/v1/models", s.endpoint(http.MethodGet, s.listModels))
	mux.HandleFunc("/v1/usage", s.endpoint(http.MethodGet, s.usageOf))
	mux.HandleFunc("/v1/usage/report", s.endpoint(http.MethodGet, s.usageReportOf))
	mux.HandleFunc("/healthz", s.healthz)
	mux.HandleFunc("/readyz", s.readyz)
	s.tokenRoutes(mux)
	mux.HandleFunc("/", s.endpoint("", s.notFound))
	if s.sso == nil {
		return mux
	}
	s.signInRoutes(mux)
	return s.sso.Middleware(mux)
}

// Serve listens on the configured address and serves until ctx is
// cancelled; then it stops accepting, lets in-flight requests and streams
// finish for up to the configured grace period, cuts what remains, and
// returns once every audit record is written.
func (s *Server) Serve(ctx context.Context) error {
	ln, err := net.Listen("tcp", s.cfg.Server.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	return s.ServeListener(ctx, ln)
}

// ServeListener is Serve on a listener the caller opened.
func (s *Server) ServeListener(ctx context.Context, ln net.Listener) error {
	baseCtx, cutStreams := context.WithCancel(context.Background())
	defer cutStreams()
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: s.cfg.Server.ReadHeaderTimeout.Std(),
		IdleTimeout:       2 * time.Minute,
		BaseContext:       func(net.Listener) context.Context { return baseCtx },
		ErrorLog:          zap.NewStdLog(s.log.Named("http")),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	s.log.Info("listening", zap.String("address", ln.Addr().String()))

	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	s.ready.Store(false)
	grace := s.cfg.Server.ShutdownGrace.Std()
	s.log.Info("shutting down: draining in-flight requests", zap.Duration("grace", grace))
	shutdownCtx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		s.log.Warn("grace period over: cutting the remaining requests", zap.Error(err))
		s.cutting.Store(true)
		cutStreams()
		_ = srv.Close()
	}
	s.inflight.Wait()
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	s.log.Info("stopped")
	return nil
}

// healthz says the process is alive.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Write([]byte(`{"status":"ok"}` + "\n"))
}
