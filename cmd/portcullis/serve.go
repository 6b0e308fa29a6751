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
)

func serve(ctx context.Context, args []string, stderr io.Writer) error {
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

	srv, err := proxy.New(proxy.Options{
		Config:        cfg,
		Logger:        log,
		Authenticator: chain,
		Minter:        minter,
		Policy:        policy,
		Audit:         records,
		Observer:      registry,
		Version:       versionString(),
	})
	if err != nil {
		return err
	}
	return srv.Serve(ctx)
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
