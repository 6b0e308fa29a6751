package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"portcullis/audit"
	"portcullis/authn"
	"portcullis/authz"
	"portcullis/config"
	"portcullis/metrics"
	"portcullis/proxy"
	"portcullis/tracing"
)

// loggedError is an error that serve has already written to the log, as a
// structured line, so the command prints nothing more.
type loggedError struct{ error }

func (e loggedError) Unwrap() error { return e.error }

func serve(ctx context.Context, args []string, stderr io.Writer) (err error) {
	fs := newFlagSet("serve", stderr)
	path := fs.String("config", "config.yaml", "configuration `file`")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return err
	}
	log, err := newLogger(cfg.Log.Level, stderr)
	if err != nil {
		return err
	}
	defer log.Sync()
	defer func() {
		if err != nil {
			log.Error("the gateway stopped", zap.Error(err))
			err = loggedError{err}
		}
	}()
	log.Info("configuration loaded", zap.String("file", cfg.Path), zap.String("version", versionString()))

	if err := checkDemoKeys(cfg, log); err != nil {
		return err
	}
	keys, err := authn.NewAPIKeys(cfg.Auth.APIKeys)
	if err != nil {
		return err
	}
	log.Info("api keys loaded", zap.Int("keys", len(cfg.Auth.APIKeys)))
	chain, minter, err := identityChain(ctx, cfg, keys, log)
	if err != nil {
		return err
	}
	sso, err := signIn(cfg, log)
	if err != nil {
		return err
	}
	if sso != nil {
		// Last: a bearer credential, when a request has one, decides.
		chain = append(chain, sso)
	}

	policy, err := authz.New(ctx, authz.Options{Dir: cfg.Policy.Dir, RequireTests: cfg.Policy.RequireTests})
	if err != nil {
		return err
	}
	log.Info("policy compiled", zap.String("dir", cfg.Policy.Dir), zap.String("revision", policy.Revision()),
		zap.Bool("require_tests", cfg.Policy.RequireTests), zap.String("reload", cfg.Policy.Reload))
	go reloadPolicy(ctx, cfg, policy, log)

	registry := metrics.New()
	registry.WatchPolicy(policy.Status)
	if addr := cfg.Metrics.Listen; addr != "" {
		go func() {
			if err := registry.Serve(ctx, addr); err != nil {
				log.Error("metrics listener stopped", zap.Error(err))
			}
		}()
		log.Info("metrics listening", zap.String("address", addr))
	}

	records, err := audit.Open(auditOptions(cfg, log))
	if err != nil {
		return err
	}
	defer func() {
		if err := records.Close(); err != nil {
			log.Error("audit log closed with an error", zap.Error(err))
		}
	}()
	registry.WatchAudit(records.Stats)
	log.Info("audit log open", zap.String("file", cfg.Audit.File), zap.Bool("stdout", cfg.Audit.Stdout), zap.Int("sinks", len(records.Stats())))

	traces, err := tracing.New(cfg.Tracing, versionString(), log.Named("tracing"))
	if err != nil {
		return err
	}
	defer func() {
		// The spans of the last calls are still queued: export them.
		ctx, cancel := context.WithTimeout(context.Background(), cfg.Tracing.Timeout.Std())
		defer cancel()
		if err := traces.Shutdown(ctx); err != nil {
			log.Error("trace export at shutdown failed", zap.Error(err))
		}
	}()
	if traces.Enabled() {
		log.Info("tracing on", zap.String("endpoint", traces.Endpoint()), zap.Float64("sample_ratio", *cfg.Tracing.SampleRatio),
			zap.String("service_name", cfg.Tracing.ServiceName))
	} else {
		log.Info("tracing off: no tracing.endpoint")
	}

	meter, store, err := openMeter(&cfg.Usage, log)
	if err != nil {
		return err
	}
	defer func() {
		if err := store.Close(); err != nil {
			log.Error("usage store closed with an error", zap.Error(err))
		}
	}()
	log.Info("usage store open", zap.String("store", usageStoreName(&cfg.Usage)), zap.String("file", usageFile(&cfg.Usage)))

	srv, err := proxy.New(proxy.Options{
		Config:        cfg,
		Logger:        log,
		Authenticator: chain,
		Minter:        minter,
		Policy:        policy,
		Audit:         records,
		Observer:      registry,
		SSO:           sso,
		Tracer:        traces.Tracer(),
		Meter:         meter,
		Version:       versionString(),
	})
	if err != nil {
		return err
	}
	registry.WatchTargets(func() []metrics.Target { return metricTargets(srv.Targets()) })
	return srv.Serve(ctx)
}

// metricTargets are the routing targets' states as the metrics read them.
func metricTargets(ts []proxy.TargetStatus) []metrics.Target {
	out := make([]metrics.Target, len(ts))
	for i, t := range ts {
		out[i] = metrics.Target{Model: t.Model, Provider: t.Provider, UpstreamModel: t.UpstreamModel,
			Open: t.State == "open", Cooldowns: t.Cooldowns, InFlight: t.InFlight}
	}
	return out
}

// signIn sets up browser sign-in when the sso section lists identity
// providers, and logs its events.
func signIn(cfg *config.Config, log *zap.Logger) (*authn.SSO, error) {
	if !cfg.SSO.Enabled() {
		return nil, nil
	}
	slog := log.Named("sso")
	sso, err := authn.NewSSO(cfg.SSO, authn.SSOOptions{OnEvent: func(e authn.SSOEvent) {
		fields := []zap.Field{zap.String("event", e.Kind), zap.String("provider", e.Provider)}
		if e.Subject != "" {
			fields = append(fields, zap.String("subject", e.Subject))
		}
		switch e.Kind {
		case "sign_in", "refresh", "sign_out":
			slog.Info(ssoMessages[e.Kind], fields...)
		case "groups_overage":
			slog.Warn(ssoMessages[e.Kind], fields...)
		default:
			slog.Warn(ssoMessages[e.Kind], append(fields, zap.Error(e.Err))...)
		}
	}})
	if err != nil {
		return nil, err
	}
	for _, p := range cfg.SSO.Providers {
		log.Info("browser sign-in on", zap.String("provider", p.Name), zap.String("issuer", p.Issuer),
			zap.String("redirect_uri", cfg.SSO.PublicURL+authn.CallbackPath))
	}
	return sso, nil
}

// ssoMessages are the log messages of sign-in events.
var ssoMessages = map[string]string{
	"sign_in":         "signed in",
	"sign_in_failed":  "sign-in failed",
	"refresh":         "sign-in renewed with the refresh token",
	"refresh_failed":  "sign-in renewal failed; the session ended",
	"session_refused": "session cookie refused",
	"sign_out":        "signed out",
	"groups_overage":  "the identity provider left the groups out (too many); the policy sees groups_overage and no groups",
}

// reloadPolicy keeps the policy current until ctx ends: on SIGHUP, and on
// changes to the policy folder unless policy.reload is "signal". A policy
// that fails to load is logged with its file and line, and the previous one
// stays in force.
func reloadPolicy(ctx context.Context, cfg *config.Config, policy *authz.Engine, log *zap.Logger) {
	report := func(changed bool, err error) {
		switch {
		case err != nil:
			log.Error("policy reload failed; the previous policy stays in force", zap.String("revision", policy.Revision()), zap.Error(err))
		case changed:
			log.Info("policy reloaded", zap.String("revision", policy.Revision()))
		}
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	if cfg.Policy.Reload == "watch" {
		go func() {
			if err := policy.Watch(ctx, authz.DefaultDebounce, report); err != nil {
				log.Error("cannot watch the policy folder; reload with SIGHUP", zap.Error(err))
			}
		}()
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			log.Info("SIGHUP: reloading the policy")
			report(policy.Reload(ctx))
		}
	}
}

// checkDemoKeys warns while the published demo key is enabled and refuses
// to expose it beyond this machine.
func checkDemoKeys(cfg *config.Config, log *zap.Logger) error {
	for i, k := range cfg.Auth.APIKeys {
		if !k.Demo {
			continue
		}
		if !cfg.LoopbackListen() {
			return fmt.Errorf("auth.api_keys[%d] (%q) is the published demo key and server.listen is %s, which is reachable from other machines; "+
				"remove the demo key (generate one with `portcullis keys generate`) or listen on 127.0.0.1", i, k.Name, cfg.Server.Listen)
		}
		log.Warn("the demo API key is enabled: its value is published in the README; remove it before real use", zap.String("key", k.Name))
	}
	return nil
}

func newLogger(level string, w io.Writer) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, errors.New("log.level: " + err.Error())
	}
	enc := zapcore.NewJSONEncoder(zapcore.EncoderConfig{
		TimeKey:        "time",
		LevelKey:       "level",
		NameKey:        "logger",
		MessageKey:     "msg",
		EncodeTime:     zapcore.RFC3339NanoTimeEncoder,
		EncodeLevel:    zapcore.LowercaseLevelEncoder,
		EncodeDuration: zapcore.StringDurationEncoder,
	})
	return zap.New(zapcore.NewCore(enc, zapcore.Lock(zapcore.AddSync(w)), lvl)), nil
}
