// Command idp runs Dex, the OpenID Connect provider, as a library for the
// end-to-end tests: memory storage, static clients that may use the
// client_credentials grant, one static password user, a local signer, and a
// listener on 127.0.0.1 only. It is a module of its own so that Dex's many
// dependencies stay out of the gateway's go.mod.
//
//	idp -addr 127.0.0.1:5556
//
// The issuer is http://ADDR/dex. The clients are fixed (see clients below);
// with -web-redirect, a web client "portcullis-web" (secret
// "portcullis-web-secret") signs people in by the authorization code flow
// and returns to that URI. The password users are alice (groups
// engineering and ml-team) and bob (no groups), both with the password
// "password". SIGTERM or SIGINT stops the server. A restart on the same address starts
// with fresh signing keys, which is how the tests rotate keys at the IdP.
package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	gosundheit "github.com/AppsFlyer/go-sundheit"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/bcrypt"

	"github.com/dexidp/dex/server"
	"github.com/dexidp/dex/server/session"
	"github.com/dexidp/dex/server/signer"
	"github.com/dexidp/dex/server/tokens"
	"github.com/dexidp/dex/storage"
	"github.com/dexidp/dex/storage/memory"
)

// clients are the OAuth2 clients the tests use. Their secrets are test
// values, known to the tests, and the server only listens on loopback.
var clients = []storage.Client{
	{
		ID:     "ci-agent",
		Secret: "ci-agent-secret",
		Name:   "CI agent",
		ClientCredentialsClaims: &storage.ClientCredentialsClaims{
			Groups: []string{"agents", "ml-team"},
		},
	},
	{
		ID:     "other-service",
		Secret: "other-service-secret",
		Name:   "Other service",
		ClientCredentialsClaims: &storage.ClientCredentialsClaims{
			Groups: []string{"agents"},
		},
	},
}

func main() {
	addr := flag.String("addr", "127.0.0.1:5556", "loopback `host:port` to listen on")
	webRedirect := flag.String("web-redirect", "", "redirect `URI` of the portcullis-web client (the gateway's /oauth2/callback)")
	webSignedOut := flag.String("web-signed-out", "", "`URI` the portcullis-web client may return to after logout")
	flag.Parse()
	if *webRedirect != "" {
		clients = append(clients, storage.Client{
			ID:                     "portcullis-web",
			Secret:                 "portcullis-web-secret",
			Name:                   "Portcullis",
			RedirectURIs:           []string{*webRedirect},
			PostLogoutRedirectURIs: []string{*webSignedOut},
		})
	}
	if err := run(*addr); err != nil {
		fmt.Fprintln(os.Stderr, "idp:", err)
		os.Exit(1)
	}
}

func run(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("-addr %s: only a loopback address is allowed", addr)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	issuer := "http://" + addr + "/dex"

	hash, err := bcrypt.GenerateFromPassword([]byte("password"), bcrypt.DefaultCost) // Dex refuses cheaper hashes
	if err != nil {
		return err
	}
	store := memory.New(logger)
	store = storage.WithStaticClients(store, clients)
	store = storage.WithStaticPasswords(store, []storage.Password{{
		Email:    "alice@example.com",
		Hash:     hash,
		Username: "alice",
		UserID:   "alice-id",
		Groups:   []string{"engineering", "ml-team"},
	}, {
		Email:    "bob@example.com",
		Hash:     hash,
		Username: "bob",
		UserID:   "bob-id",
	}}, logger)
	if err := store.CreateConnector(ctx, storage.Connector{ID: "local", Type: "local", Name: "Email"}); err != nil {
		return fmt.Errorf("create connector: %w", err)
	}

	const idTokensValidFor = 10 * time.Minute
	local := signer.LocalConfig{KeysRotationPeriod: "6h"}
	sig, err := local.Open(ctx, store, idTokensValidFor, time.Now, logger)
	if err != nil {
		return fmt.Errorf("open signer: %w", err)
	}

	// Refresh tokens rotate on use, as in a production Dex, with Dex's
	// default grace for a token used twice at once.
	refresh, err := tokens.NewRefreshTokenPolicy(logger, true, "", "", "3s")
	if err != nil {
		return fmt.Errorf("refresh token policy: %w", err)
	}
	// Browser sessions at Dex: they publish an end_session_endpoint (RP-
	// initiated logout), and their refresh path avoids a lock that the
	// memory storage would otherwise take twice.
	sessionKey := make([]byte, 32)
	rand.Read(sessionKey)
	srv, err := server.NewServer(ctx, server.Config{
		RefreshTokenPolicy: refresh,
		SessionConfig: &session.Config{
			CookieName:          "dex_session",
			CookieEncryptionKey: sessionKey,
			AbsoluteLifetime:    24 * time.Hour,
			ValidIfNotUsedFor:   time.Hour,
		},
		Issuer:             issuer,
		Storage:            store,
		AllowedGrantTypes:  []string{"client_credentials", "authorization_code", "refresh_token", "password"},
		PasswordConnector:  "local",
		SkipApprovalScreen: true,
		Logger:             logger,
		PrometheusRegistry: prometheus.NewRegistry(),
		HealthChecker:      gosundheit.New(),
		Signer:             sig,
		IDTokensValidFor:   idTokensValidFor,
	})
	if err != nil {
		return fmt.Errorf("start dex: %w", err)
	}

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	fmt.Fprintf(os.Stderr, "idp: dex serving issuer %s\n", issuer)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := hs.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
