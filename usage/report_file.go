package usage

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"time"
)

// The embedded store keeps report counters in memory and logs every
// change to them as a line "u" followed by the quoted day, scope, name,
// model and provider, the expiry (Unix seconds), calls, input tokens,
// output tokens and picodollars, in the same log as the budgets' counters:
// they survive a restart with the same bound (the last flush interval).

type reportKey struct{ day, scope, name, model, provider string }

type reportCounter struct {
	Totals
	expires time.Time
}

var _ Reporter = (*LocalStore)(nil)

// Record implements Reporter.
func (s *LocalStore) Record(_ context.Context, entries []ReportEntry, ttl time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	expires := s.now().Add(ttl).Truncate(time.Second).Add(time.Second)
	for _, e := range entries {
		k := reportKey{e.Day, e.Scope, e.Name, e.Model, e.Provider}
		s.applyReportLocked(k, e.Totals, expires)
		if s.path != "" {
			s.pending = appendReportLine(s.pending, k, e.Totals, expires.Unix())
		}
	}
	return nil
}

func (s *LocalStore) applyReportLocked(k reportKey, t Totals, expires time.Time) {
	rc := s.reports[k]
	if rc == nil {
		rc = &reportCounter{}
		s.reports[k] = rc
	}
	rc.add(t)
	if expires.After(rc.expires) {
		rc.expires = expires
	}
}

// Report implements Reporter.
func (s *LocalStore) Report(_ context.Context, from, to string) ([]ReportEntry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	var out []ReportEntry
	for k, rc := range s.reports {
		if k.day < from || k.day > to || now.After(rc.expires) {
			continue
		}
		out = append(out, ReportEntry{Day: k.day, Scope: k.scope, Name: k.name, Model: k.model, Provider: k.provider, Totals: rc.Totals})
	}
	return out, nil
}

func appendReportLine(b []byte, k reportKey, t Totals, expires int64) []byte {
	b = append(b, 'u')
	for _, f := range [...]string{k.day, k.scope, k.name, k.model, k.provider} {
		b = append(b, ' ')
		b = strconv.AppendQuote(b, f)
	}
	for _, v := range [...]int64{expires, t.Calls, t.InputTokens, t.OutputTokens, t.Pico} {
		b = append(b, ' ')
		b = strconv.AppendInt(b, v, 10)
	}
	return append(b, '\n')
}

func parseReportLine(line []byte) (k reportKey, t Totals, expires int64, err error) {
	if len(line) < 2 || line[1] != ' ' {
		return k, t, 0, fmt.Errorf("malformed report line")
	}
	rest := string(line[2:])
	var f [5]string
	for i := range f {
		q, err := strconv.QuotedPrefix(rest)
		if err != nil {
			return k, t, 0, err
		}
		f[i], _ = strconv.Unquote(q)
		rest = rest[len(q):]
		if i < len(f)-1 {
			if len(rest) == 0 || rest[0] != ' ' {
				return k, t, 0, fmt.Errorf("malformed report line")
			}
			rest = rest[1:]
		}
	}
	fields := bytes.Fields([]byte(rest))
	if len(fields) != 5 {
		return k, t, 0, fmt.Errorf("want 5 numbers, have %d", len(fields))
	}
	var n [5]int64
	for i, fl := range fields {
		if n[i], err = strconv.ParseInt(string(fl), 10, 64); err != nil {
			return k, t, 0, err
		}
	}
	return reportKey{f[0], f[1], f[2], f[3], f[4]}, Totals{n[1], n[2], n[3], n[4]}, n[0], nil
}
