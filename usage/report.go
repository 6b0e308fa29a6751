package usage

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Report counters: every settled call is counted, per day (in the meter's
// time zone) × subject × model × provider, and per day × group × model ×
// provider for each of the caller's groups, in the same store as the
// budgets. Reports by identity, group, model, provider and day sum them.

// Call is one settled call, for the report counters.
type Call struct {
	// Subject and Groups are the caller's identity.
	Subject string
	Groups  []string
	// Model is the name the client asked for; Provider the one that served it.
	Model, Provider string
	// Used is what the call was charged; Pico its cost.
	Used Tokens
	Pico int64
}

// Scopes of report entries.
const (
	ScopeSubject = "s"
	ScopeGroup   = "g"
)

// ReportEntry is one report counter: a day, a subject or group, a model
// and a provider, and what was counted there.
type ReportEntry struct {
	Day      string // 2006-01-02
	Scope    string // ScopeSubject or ScopeGroup
	Name     string
	Model    string
	Provider string
	Totals
}

// Totals are what report counters hold.
type Totals struct {
	Calls        int64
	InputTokens  int64
	OutputTokens int64
	Pico         int64
}

func (t *Totals) add(o Totals) {
	t.Calls += o.Calls
	t.InputTokens += o.InputTokens
	t.OutputTokens += o.OutputTokens
	t.Pico += o.Pico
}

// USD is the cost in dollars.
func (t Totals) USD() float64 { return float64(t.Pico) / 1e12 }

// Reporter is a store that keeps report counters (both stores do).
type Reporter interface {
	// Record adds entries to their counters, keeping them for ttl at least.
	Record(ctx context.Context, entries []ReportEntry, ttl time.Duration) error
	// Report returns every counter of the days from through to (inclusive,
	// 2006-01-02).
	Report(ctx context.Context, from, to string) ([]ReportEntry, error)
}

// DayLayout is how report days are written.
const DayLayout = "2006-01-02"

// DefaultReportRetention is how long report counters are kept by default.
const DefaultReportRetention = 400 * 24 * time.Hour

// Record counts a settled call into the report counters: one entry for
// its subject and one for each of its groups, on today's day. A store
// that keeps no report counters records nothing. A store failure is
// returned, and warned about through Options.Warn at most every 10 s.
func (m *Meter) Record(ctx context.Context, c *Call) error {
	rep, ok := m.store.(Reporter)
	if !ok {
		return nil
	}
	day := m.Day(m.o.Now())
	t := Totals{Calls: 1, InputTokens: c.Used.Input, OutputTokens: c.Used.Output, Pico: c.Pico}
	entries := make([]ReportEntry, 0, 1+len(c.Groups))
	entries = append(entries, ReportEntry{Day: day, Scope: ScopeSubject, Name: c.Subject, Model: c.Model, Provider: c.Provider, Totals: t})
	seen := make(map[string]bool, len(c.Groups))
	for _, g := range c.Groups {
		if seen[g] {
			continue
		}
		seen[g] = true
		entries = append(entries, ReportEntry{Day: day, Scope: ScopeGroup, Name: g, Model: c.Model, Provider: c.Provider, Totals: t})
	}
	if err := rep.Record(ctx, entries, m.o.ReportRetention); err != nil {
		now := time.Now().UnixNano()
		if last := m.reportWarned.Load(); now-last >= int64(warnEvery) && m.reportWarned.CompareAndSwap(last, now) {
			m.o.Warn("usage store unavailable; calls are missing from the usage reports (warned at most every 10s)", err)
		}
		return fmt.Errorf("record usage report: %w", err)
	}
	return nil
}

// Day is the report day of t: its date in the meter's time zone.
func (m *Meter) Day(t time.Time) string { return t.In(m.o.Location).Format(DayLayout) }

// ReportQuery asks for a report.
type ReportQuery struct {
	// From and To are the first and last day (2006-01-02), inclusive.
	From, To string
	// GroupBy are the keys rows are split by: identity, group, model,
	// provider, day. None: one row of totals.
	GroupBy []string
	// Subject or Group restrict the report to one subject or one group;
	// neither: everyone.
	Subject, Group string
}

// ReportRow is one row of a report: its keys (by GroupBy name) and totals.
type ReportRow struct {
	Keys map[string]string
	Totals
}

// Report keys.
var reportKeys = map[string]bool{"identity": true, "group": true, "model": true, "provider": true, "day": true}

// MaxReportDays is the longest range a report may span.
const MaxReportDays = 1000

// ReportError is a query the report cannot answer (a bad key or date).
type ReportError struct{ Msg string }

func (e *ReportError) Error() string { return e.Msg }

// Check validates q, normalising its group-by keys.
func (q *ReportQuery) Check() error {
	from, err := time.Parse(DayLayout, q.From)
	if err != nil {
		return &ReportError{fmt.Sprintf("from %q is not a date (YYYY-MM-DD)", q.From)}
	}
	to, err := time.Parse(DayLayout, q.To)
	if err != nil {
		return &ReportError{fmt.Sprintf("to %q is not a date (YYYY-MM-DD)", q.To)}
	}
	if to.Before(from) {
		return &ReportError{"to is before from"}
	}
	if to.Sub(from) > MaxReportDays*24*time.Hour {
		return &ReportError{fmt.Sprintf("a report spans at most %d days", MaxReportDays)}
	}
	if q.Subject != "" && q.Group != "" {
		return &ReportError{"ask for a subject or a group, not both"}
	}
	seen := map[string]bool{}
	keys := q.GroupBy[:0:0]
	for _, k := range q.GroupBy {
		k = strings.TrimSpace(k)
		if k == "" || seen[k] {
			continue
		}
		if !reportKeys[k] {
			return &ReportError{fmt.Sprintf("group_by %q is not one of identity, group, model, provider, day", k)}
		}
		seen[k] = true
		keys = append(keys, k)
	}
	q.GroupBy = keys
	if seen["identity"] && seen["group"] {
		return &ReportError{"group_by cannot split by identity and group at once (calls are counted per group, not per member)"}
	}
	if seen["identity"] && q.Group != "" {
		return &ReportError{"a group's report cannot be split by identity (calls are counted per group, not per member)"}
	}
	if seen["group"] && q.Subject != "" {
		return &ReportError{"a subject's report cannot be split by group"}
	}
	return nil
}

// Report sums the report counters q asks for into rows, sorted by their
// keys, and their totals. A report by group (group_by group, or a
// group's report) counts a call once into each of its caller's groups, so
// the totals of a report by group across groups count a call of a member
// of two groups twice.
func (m *Meter) Report(ctx context.Context, q ReportQuery) ([]ReportRow, Totals, error) {
	var total Totals
	if err := q.Check(); err != nil {
		return nil, total, err
	}
	rep, ok := m.store.(Reporter)
	if !ok {
		return nil, total, fmt.Errorf("this usage store keeps no reports")
	}
	entries, err := rep.Report(ctx, q.From, q.To)
	if err != nil {
		return nil, total, &StoreError{Err: err}
	}
	scope := ScopeSubject
	byGroup := q.Group != ""
	for _, k := range q.GroupBy {
		byGroup = byGroup || k == "group"
	}
	if byGroup {
		scope = ScopeGroup
	}
	rows := map[string]*ReportRow{}
	for _, e := range entries {
		if e.Scope != scope || q.Subject != "" && e.Name != q.Subject || q.Group != "" && e.Name != q.Group {
			continue
		}
		keys := make(map[string]string, len(q.GroupBy))
		var id strings.Builder
		for _, k := range q.GroupBy {
			var v string
			switch k {
			case "identity", "group":
				v = e.Name
			case "model":
				v = e.Model
			case "provider":
				v = e.Provider
			case "day":
				v = e.Day
			}
			keys[k] = v
			id.WriteString(v)
			id.WriteByte(0)
		}
		r := rows[id.String()]
		if r == nil {
			r = &ReportRow{Keys: keys}
			rows[id.String()] = r
		}
		r.add(e.Totals)
		total.add(e.Totals)
	}
	out := make([]ReportRow, 0, len(rows))
	for _, r := range rows {
		out = append(out, *r)
	}
	sort.Slice(out, func(i, j int) bool {
		for _, k := range q.GroupBy {
			if a, b := out[i].Keys[k], out[j].Keys[k]; a != b {
				return a < b
			}
		}
		return false
	})
	return out, total, nil
}

// days lists the days from through to, inclusive.
func days(from, to string) ([]string, error) {
	f, err := time.Parse(DayLayout, from)
	if err != nil {
		return nil, err
	}
	t, err := time.Parse(DayLayout, to)
	if err != nil {
		return nil, err
	}
	var out []string
	for d := f; !d.After(t) && len(out) <= MaxReportDays; d = d.AddDate(0, 0, 1) {
		out = append(out, d.Format(DayLayout))
	}
	return out, nil
}
