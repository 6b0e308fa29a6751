package main

import (
	"context"
	"net/url"
	"time"

	"go.uber.org/zap"

	"portcullis/config"
	"portcullis/usage"
)

// openMeter opens the usage store the configuration names and the meter
// over it, with the price table and its overrides.
func openMeter(cfg *config.Usage, log *zap.Logger) (*usage.Meter, usage.Store, error) {
	overrides := make(map[string]usage.Price, len(cfg.Prices))
	for name, p := range cfg.Prices {
		overrides[name] = usage.Price(p)
	}
	prices, err := usage.NewPrices(overrides)
	if err != nil {
		return nil, nil, err
	}
	ulog := log.Named("usage")
	warn := func(msg string, err error) { ulog.Warn(msg, zap.Error(err)) }
	var store usage.Store
	if cfg.RedisStore() {
		rs, err := usage.OpenRedisStore(cfg.Store)
		if err != nil {
			return nil, nil, err
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if err := rs.Ping(ctx); err != nil {
			ulog.Warn("usage store: Redis does not answer yet; calls follow on_store_error until it does", zap.Error(err))
		}
		cancel()
		store = rs
	} else {
		ls, err := usage.OpenLocalStore(cfg.File, usage.FileOptions{
			FlushInterval: cfg.FlushInterval.Std(),
			Warn:          warn,
			Synced: func(settled int64) {
				ulog.Debug("usage log synced", zap.Int64("settled", settled))
			},
		})
		if err != nil {
			return nil, nil, err
		}
		store = ls
	}
	m := usage.NewMeter(store, prices, usage.Options{
		Location:            cfg.Location(),
		DefaultOutputTokens: int64(cfg.DefaultMaxTokens),
		MinOutputTokens:     int64(cfg.MinOutputTokens),
		OnStoreError:        cfg.OnStoreError,
		Warn:                warn,
	})
	return m, store, nil
}

// usageStoreName names the store for the log, without a Redis password.
func usageStoreName(cfg *config.Usage) string {
	if !cfg.RedisStore() {
		return "embedded"
	}
	if u, err := url.Parse(cfg.Store); err == nil {
		u.User = nil
		return u.String()
	}
	return "redis"
}

func usageFile(cfg *config.Usage) string {
	if cfg.RedisStore() {
		return ""
	}
	return cfg.File
}
