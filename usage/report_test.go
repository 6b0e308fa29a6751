package usage

import (
	"context"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// reportWorkload records a mixed workload: alice (groups eng, demo) and
// bob (group sales), model fast on provider openai and model smart on
// provider anthropic, on 2026-12-01 and 2026-12-02.
func reportWorkload(t *testing.T, store Store) *Meter {
	t.Helper()
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	m := NewMeter(store, mustPrices(t, nil), Options{Now: func() time.Time { return now }})
	calls := []struct {
		day     int
		subject string
		groups  []string
		model   string
		prov    string
		in, out int64
		pico    int64
	}{
		{1, "alice", []string{"eng", "demo"}, "fast", "openai", 100, 10, 1000},
		{1, "alice", []string{"eng", "demo"}, "smart", "anthropic", 200, 20, 5000},
		{1, "bob", []string{"sales"}, "fast", "openai", 300, 30, 3000},
		{2, "alice", []string{"eng", "demo"}, "fast", "openai", 400, 40, 4000},
		{2, "bob", []string{"sales"}, "smart", "anthropic", 500, 50, 25000},
		{2, "bob", []string{"sales"}, "smart", "anthropic", 600, 60, 30000},
	}
	for _, c := range calls {
		now = time.Date(2026, 12, c.day, 23, 59, 0, 0, time.UTC)
		if err := m.Record(context.Background(), &Call{Subject: c.subject, Groups: c.groups, Model: c.model, Provider: c.prov,
			Used: Tokens{Input: c.in, Output: c.out}, Pico: c.pico}); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

type wantRow struct {
	keys                  string
	calls, in, out, picos int64
}

func rowsOf(rows []ReportRow, groupBy []string) []wantRow {
	out := make([]wantRow, len(rows))
	for i, r := range rows {
		k := ""
		for j, g := range groupBy {
			if j > 0 {
				k += "/"
			}
			k += r.Keys[g]
		}
		out[i] = wantRow{k, r.Calls, r.InputTokens, r.OutputTokens, r.Pico}
	}
	return out
}

func checkReports(t *testing.T, m *Meter) {
	t.Helper()
	cases := []struct {
		q     ReportQuery
		want  []wantRow
		total Totals
	}{
		{ReportQuery{GroupBy: []string{"model"}}, []wantRow{
			{"fast", 3, 800, 80, 8000}, {"smart", 3, 1300, 130, 60000}}, Totals{6, 2100, 210, 68000}},
		{ReportQuery{GroupBy: []string{"provider"}}, []wantRow{
			{"anthropic", 3, 1300, 130, 60000}, {"openai", 3, 800, 80, 8000}}, Totals{6, 2100, 210, 68000}},
		{ReportQuery{GroupBy: []string{"day"}}, []wantRow{
			{"2026-12-01", 3, 600, 60, 9000}, {"2026-12-02", 3, 1500, 150, 59000}}, Totals{6, 2100, 210, 68000}},
		{ReportQuery{GroupBy: []string{"identity"}}, []wantRow{
			{"alice", 3, 700, 70, 10000}, {"bob", 3, 1400, 140, 58000}}, Totals{6, 2100, 210, 68000}},
		// Alice's calls count into eng and demo each.
		{ReportQuery{GroupBy: []string{"group"}}, []wantRow{
			{"demo", 3, 700, 70, 10000}, {"eng", 3, 700, 70, 10000}, {"sales", 3, 1400, 140, 58000}}, Totals{9, 2800, 280, 78000}},
		{ReportQuery{GroupBy: []string{"model", "day"}, Subject: "bob"}, []wantRow{
			{"fast/2026-12-01", 1, 300, 30, 3000}, {"smart/2026-12-02", 2, 1100, 110, 55000}}, Totals{3, 1400, 140, 58000}},
		{ReportQuery{GroupBy: []string{"provider"}, Group: "eng"}, []wantRow{
			{"anthropic", 1, 200, 20, 5000}, {"openai", 2, 500, 50, 5000}}, Totals{3, 700, 70, 10000}},
		{ReportQuery{GroupBy: []string{"day"}, From: "2026-12-02", To: "2026-12-02"}, []wantRow{
			{"2026-12-02", 3, 1500, 150, 59000}}, Totals{3, 1500, 150, 59000}},
	}
	for _, c := range cases {
		if c.q.From == "" {
			c.q.From, c.q.To = "2026-12-01", "2026-12-31"
		}
		rows, total, err := m.Report(context.Background(), c.q)
		if err != nil {
			t.Fatalf("%+v: %v", c.q, err)
		}
		if got := rowsOf(rows, c.q.GroupBy); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%+v: rows %+v, want %+v", c.q, got, c.want)
		}
		if total != c.total {
			t.Errorf("%+v: total %+v, want %+v", c.q, total, c.total)
		}
	}
}

func TestReportEmbedded(t *testing.T) {
	checkReports(t, reportWorkload(t, NewMemoryStore()))
}

func TestReportSurvivesRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "usage.log")
	s, err := OpenLocalStore(path, FileOptions{FlushInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	reportWorkload(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = OpenLocalStore(path, FileOptions{FlushInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	checkReports(t, NewMeter(s, mustPrices(t, nil), Options{}))
	// And once more after a compaction at open wrote them as a snapshot.
	s.Close()
	s, err = OpenLocalStore(path, FileOptions{FlushInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	checkReports(t, NewMeter(s, mustPrices(t, nil), Options{}))
}

func TestReportRedis(t *testing.T) {
	rs, err := OpenRedisStore(startRedis(t))
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	m := reportWorkload(t, rs)
	checkReports(t, m)
	ttl, err := rs.client.PTTL(context.Background(), reportRedisKey("2026-12-01")).Result()
	if err != nil || ttl <= 399*24*time.Hour || ttl > DefaultReportRetention {
		t.Errorf("report key TTL %v (%v), want about %v", ttl, err, DefaultReportRetention)
	}
}

func TestReportQueryErrors(t *testing.T) {
	m := NewMeter(NewMemoryStore(), mustPrices(t, nil), Options{})
	for _, q := range []ReportQuery{
		{From: "2026-12-01", To: "2026-12-31", GroupBy: []string{"colour"}},
		{From: "12/01/2026", To: "2026-12-31"},
		{From: "2026-12-31", To: "2026-12-01"},
		{From: "2026-12-01", To: "2026-12-31", GroupBy: []string{"identity", "group"}},
		{From: "2026-12-01", To: "2026-12-31", GroupBy: []string{"identity"}, Group: "eng"},
	} {
		var re *ReportError
		if _, _, err := m.Report(context.Background(), q); err == nil || !asReportError(err, &re) {
			t.Errorf("%+v: err %v, want a ReportError", q, err)
		}
	}
}

func asReportError(err error, re **ReportError) bool {
	e, ok := err.(*ReportError)
	*re = e
	return ok
}

// A store that fails loses the call from the reports, with a warning at
// most every 10 s, not one per call.
func TestReportStoreDownWarnsOnce(t *testing.T) {
	rs, err := OpenRedisStore("redis://127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	var warnings int
	m := NewMeter(rs, mustPrices(t, nil), Options{Warn: func(string, error) { warnings++ }})
	for range 3 {
		if err := m.Record(context.Background(), &Call{Subject: "alice", Model: "fast", Provider: "openai"}); err == nil {
			t.Fatal("Record succeeded without a store")
		}
	}
	if warnings != 1 {
		t.Errorf("%d warnings, want 1", warnings)
	}
}
