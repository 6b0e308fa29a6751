// Command idp runs Dex, the OpenID Connect provider, as a library for the
// end-to-end tests: memory storage, static clients that may use the
// client_credentials grant, one static password user, a local signer, and a
// listener on 127.0.0.1 only. It is a module of its own so that Dex's many
// dependencies stay out of the gateway's go.mod.
//
//	idp -addr 127.0.0.1:5556
//
// The issuer is http://ADDR/dex. The clients are fixed (see clients below);
// SIGTERM or SIGINT stops the server. A restart on the same address starts
// with fresh signing keys, which is how the tests rotate keys at the IdP.
package main

import (
	"context"
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
	"github.com/dexidp/dex/server/signer"
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
	flag.Parse()
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

	hash, err := bcrypt.GenerateFromPassword([]byte("password"), bcrypt.MinCost)
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
		Groups:   []string{"ml-team"},
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

	srv, err := server.NewServer(ctx, server.Config{
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
