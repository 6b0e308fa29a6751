package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"go.uber.org/zap"

	"portcullis/authn"
	"portcullis/config"
)

// fileWatchInterval is how often the keys file and the revocation list are
// checked for changes.
const fileWatchInterval = 2 * time.Second

// identityChain builds the authenticator chain: API keys (from the config
// and the keys file), then the JWTs of trusted issuers and of the gateway
// itself. It starts the watchers of the keys file and revocation list,
// which stop with ctx.
func identityChain(ctx context.Context, cfg *config.Config, keys *authn.APIKeys, log *zap.Logger) (authn.Chain, *authn.Minter, error) {
	id := cfg.Identity
	if id.APIKeysFile != "" {
		if err := keys.LoadFile(id.APIKeysFile); err != nil {
			return nil, nil, err
		}
		log.Info("api keys file loaded", zap.String("file", id.APIKeysFile))
		go keys.WatchFile(ctx, id.APIKeysFile, fileWatchInterval, func(err error) {
			log.Error("api keys file reload failed; the previous keys stay in force", zap.Error(err))
		})
	}
	var minter *authn.Minter
	if id.Tokens.SigningKeyFile != "" {
		m, err := authn.NewMinter(id.Tokens)
		if err != nil {
			return nil, nil, err
		}
		minter = m
		log.Info("token minting on", zap.String("issuer", m.Issuer()), zap.String("key_file", id.Tokens.SigningKeyFile),
			zap.Duration("max_lifetime", m.MaxLifetime()))
		go m.WatchRevoked(ctx, fileWatchInterval, func(err error) {
			log.Error("revoked tokens reload failed; the previous list stays in force", zap.Error(err))
		})
	}
	chain := authn.Chain{keys}
	if len(id.Issuers) == 0 && minter == nil {
		return chain, nil, nil
	}
	jwts, err := authn.NewJWTs(ctx, id.Issuers, authn.JWTOptions{
		Minted: minter,
		OnKeyError: func(issuer string, failures int64, err error) {
			log.Warn("issuer keys could not be fetched; cached keys stay in use", zap.String("issuer", issuer),
				zap.Int64("failures", failures), zap.Error(err))
		},
	})
	if err != nil {
		return nil, nil, err
	}
	for _, is := range id.Issuers {
		log.Info("trusting token issuer", zap.String("issuer", is.Issuer), zap.Strings("audiences", is.Audiences),
			zap.Strings("algorithms", is.Algorithms))
	}
	return append(chain, jwts), minter, nil
}

// tokensCommand runs `portcullis tokens mint|rotate-key`.
func tokensCommand(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errUsage
	}
	switch args[0] {
	case "mint":
		return tokensMint(args[1:], stdout, stderr)
	case "rotate-key":
		return tokensRotateKey(args[1:], stdout, stderr)
	}
	return errUsage
}

// tokensMint signs a token for an identity given on the command line, for
// operators handing a short-lived credential to an agent.
func tokensMint(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("tokens mint", stderr)
	path := fs.String("config", "config.yaml", "configuration `file`")
	subject := fs.String("subject", "", "the identity's subject (required)")
	typ := fs.String("type", "service", "the identity's type: service, user or apikey")
	lifetime := fs.Duration("lifetime", 0, "the token's lifetime (default: identity.tokens.default_lifetime)")
	asJSON := fs.Bool("json", false, "print the token response as JSON")
	var groups, roles, models stringList
	fs.Var(&groups, "group", "a group of the identity (repeatable)")
	fs.Var(&roles, "role", "a role of the identity (repeatable)")
	fs.Var(&models, "model", "narrow the token to this model (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *subject == "" {
		return errors.New("tokens mint: --subject is required")
	}
	if !slices.Contains([]string{"service", "user", "apikey"}, *typ) {
		return fmt.Errorf("tokens mint: --type %q is not service, user or apikey", *typ)
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return err
	}
	if cfg.Identity.Tokens.SigningKeyFile == "" {
		return errors.New("tokens mint: identity.tokens.signing_key_file is not set in " + cfg.Path)
	}
	m, err := authn.NewMinter(cfg.Identity.Tokens)
	if err != nil {
		return err
	}
	id := &authn.Identity{Type: authn.Type(*typ), Subject: *subject, Groups: groups, Roles: roles}
	var scope []string
	if len(models) > 0 {
		scope = models
	}
	t, err := m.Mint(id, *lifetime, scope, time.Now())
	if err != nil {
		return fmt.Errorf("tokens mint: %w", err)
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(map[string]any{
			"access_token": t.Token, "token_type": "Bearer", "id": t.ID, "expires_at": t.Expires.Unix(),
		})
	}
	fmt.Fprintf(stderr, "# token %s for %s, expires %s; revoke it by adding its id to identity.tokens.revoked_file\n",
		t.ID, *subject, t.Expires.UTC().Format(time.RFC3339))
	fmt.Fprintln(stdout, t.Token)
	return nil
}

// tokensRotateKey puts a new signing key at the head of the key file,
// keeping the previous ones for the tokens they signed.
func tokensRotateKey(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("tokens rotate-key", stderr)
	path := fs.String("config", "config.yaml", "configuration `file`")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return err
	}
	t := cfg.Identity.Tokens
	if t.SigningKeyFile == "" {
		return errors.New("tokens rotate-key: identity.tokens.signing_key_file is not set in " + cfg.Path)
	}
	if err := authn.RotateKeyFile(t.SigningKeyFile, t.Algorithm); err != nil {
		return fmt.Errorf("tokens rotate-key: %w", err)
	}
	fmt.Fprintf(stdout, "%s: new %s signing key; restart the gateway (or its replicas one by one) to sign with it\n",
		t.SigningKeyFile, t.Algorithm)
	return nil
}
