package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/redis/go-redis/v9"
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
		// go-redis logs its own connection troubles as plain lines on
		// stderr; they belong in the gateway's structured log.
		redis.SetLogger(redisLog{ulog})
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
		ReportRetention:     cfg.ReportRetention.Std(),
	})
	return m, store, nil
}

// redisLog writes go-redis's messages into the gateway's log.
type redisLog struct{ log *zap.Logger }

func (l redisLog) Printf(_ context.Context, format string, v ...any) {
	l.log.Warn("redis: " + fmt.Sprintf(format, v...))
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

// getGateway sends GET path to the gateway at base with the caller's
// credential (PORTCULLIS_API_KEY) and returns the body of a 200 answer,
// read up to limit bytes.
func getGateway(base, path string, limit int64) ([]byte, error) {
	key := os.Getenv("PORTCULLIS_API_KEY")
	if key == "" {
		return nil, fmt.Errorf("set PORTCULLIS_API_KEY to your gateway API key or token")
	}
	req, err := http.NewRequest(http.MethodGet, strings.TrimRight(base, "/")+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("the gateway answered %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	return body, nil
}

// usageCommand prints GET /v1/usage of a running gateway as a table, or
// as the JSON it answered with --json.
func usageCommand(args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "report" {
		return usageReportCommand(args[1:], stdout, stderr)
	}
	fs := flag.NewFlagSet("usage", flag.ContinueOnError)
	fs.SetOutput(stderr)
	base := fs.String("url", envOr("PORTCULLIS_URL", "http://127.0.0.1:8080"), "the gateway's base URL (env PORTCULLIS_URL)")
	raw := fs.Bool("json", false, "print the gateway's JSON answer")
	if err := fs.Parse(args); err != nil {
		return err
	}
	body, err := getGateway(*base, "/v1/usage", 1<<20)
	if err != nil {
		return err
	}
	if *raw {
		_, err := stdout.Write(append(body, '\n'))
		return err
	}
	var rep struct {
		Subject    string       `json:"subject"`
		Budgets    []usageEntry `json:"budgets"`
		RateLimits []usageEntry `json:"rate_limits"`
	}
	if err := json.Unmarshal(body, &rep); err != nil {
		return fmt.Errorf("read the gateway's answer: %w", err)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "usage of %s\n", rep.Subject)
	fmt.Fprintln(tw, "LIMIT\tWINDOW\tTOKENS\tUSD\tREQUESTS\tRESETS")
	for _, e := range append(rep.Budgets, rep.RateLimits...) {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", e.Key, e.Window, ofLimit(float64(e.UsedTokens), float64(e.LimitTokens), "%.0f"),
			ofLimit(e.UsedUSD, e.LimitUSD, "%.4f"), ofLimit(float64(e.UsedRequests), float64(e.LimitRequests), "%.0f"), e.Resets.Local().Format(time.RFC3339))
	}
	return tw.Flush()
}

type usageEntry struct {
	Key           string    `json:"key"`
	Window        string    `json:"window"`
	LimitTokens   int64     `json:"limit_tokens"`
	LimitUSD      float64   `json:"limit_usd"`
	LimitRequests int64     `json:"limit_requests"`
	UsedTokens    int64     `json:"used_tokens"`
	UsedUSD       float64   `json:"used_usd"`
	UsedRequests  int64     `json:"used_requests"`
	Resets        time.Time `json:"resets_at"`
}

// ofLimit is "used / limit", or just "used" without a limit.
func ofLimit(used, limit float64, format string) string {
	if limit == 0 {
		return fmt.Sprintf(format, used)
	}
	return fmt.Sprintf(format+" / "+format, used, limit)
}

func envOr(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}
