package usage

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// The Redis store keeps a day's report counters in one hash,
// "pc:report|<day>", with four integer fields per subject or group, model
// and provider: the quoted scope, name, model and provider, then c, i, o
// or p (calls, input tokens, output tokens, picodollars), added with
// HINCRBY. A day's hash expires the report retention after its last call.

var _ Reporter = (*RedisStore)(nil)

func reportRedisKey(day string) string { return "pc:report|" + day }

func reportField(e *ReportEntry) string {
	b := make([]byte, 0, 16+len(e.Scope)+len(e.Name)+len(e.Model)+len(e.Provider))
	for _, f := range [...]string{e.Scope, e.Name, e.Model, e.Provider} {
		b = strconv.AppendQuote(b, f)
		b = append(b, ' ')
	}
	return string(b)
}

// Record implements Reporter: one round trip (MULTI … EXEC).
func (s *RedisStore) Record(ctx context.Context, entries []ReportEntry, ttl time.Duration) error {
	pipe := s.client.TxPipeline()
	days := map[string]bool{}
	for i := range entries {
		e := &entries[i]
		key, f := reportRedisKey(e.Day), reportField(e)
		days[e.Day] = true
		for _, kv := range [...]struct {
			kind string
			v    int64
		}{{"c", e.Calls}, {"i", e.InputTokens}, {"o", e.OutputTokens}, {"p", e.Pico}} {
			if kv.v != 0 || kv.kind == "c" {
				pipe.HIncrBy(ctx, key, f+kv.kind, kv.v)
			}
		}
	}
	for d := range days {
		pipe.PExpire(ctx, reportRedisKey(d), ttl)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("%w: %w", ErrStoreUnavailable, err)
	}
	return nil
}

// Report implements Reporter: one pipelined HGETALL per day.
func (s *RedisStore) Report(ctx context.Context, from, to string) ([]ReportEntry, error) {
	ds, err := days(from, to)
	if err != nil {
		return nil, err
	}
	pipe := s.client.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(ds))
	for i, d := range ds {
		cmds[i] = pipe.HGetAll(ctx, reportRedisKey(d))
	}
	if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
		return nil, fmt.Errorf("%w: %w", ErrStoreUnavailable, err)
	}
	var out []ReportEntry
	for i, d := range ds {
		byField := map[string]*ReportEntry{}
		for f, v := range cmds[i].Val() {
			if len(f) < 2 {
				continue
			}
			prefix, kind := f[:len(f)-1], f[len(f)-1]
			e := byField[prefix]
			if e == nil {
				parts, ok := unquoteFields(prefix, 4)
				if !ok {
					continue
				}
				e = &ReportEntry{Day: d, Scope: parts[0], Name: parts[1], Model: parts[2], Provider: parts[3]}
				byField[prefix] = e
			}
			n, _ := strconv.ParseInt(v, 10, 64)
			switch kind {
			case 'c':
				e.Calls += n
			case 'i':
				e.InputTokens += n
			case 'o':
				e.OutputTokens += n
			case 'p':
				e.Pico += n
			}
		}
		for _, e := range byField {
			out = append(out, *e)
		}
	}
	return out, nil
}

// unquoteFields reads n quoted strings, each followed by a space.
func unquoteFields(s string, n int) ([]string, bool) {
	out := make([]string, 0, n)
	for range n {
		q, err := strconv.QuotedPrefix(s)
		if err != nil {
			return nil, false
		}
		v, _ := strconv.Unquote(q)
		out = append(out, v)
		s = s[len(q):]
		if !strings.HasPrefix(s, " ") {
			return nil, false
		}
		s = s[1:]
	}
	return out, s == ""
}
