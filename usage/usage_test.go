package usage

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	_ "time/tzdata"
)

func mustPrices(t testing.TB, o map[string]Price) *Prices {
	t.Helper()
	p, err := NewPrices(o)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// The cost of a mixed workload equals the sum worked out by hand from the
// price table (prices.json and the overrides below), per call and in total.
func TestCostOfMixedWorkloadMatchesHandComputation(t *testing.T) {
	prices := mustPrices(t, map[string]Price{
		"house-model":   {Input: 1, Output: 2},
		"thinker":       {Input: 1, Output: 2, Reasoning: 3},
		"gpt-4o-mini":   {Input: 0.2, CachedInput: 0.1, Output: 0.8}, // an override of a default
		"groq/llama-x1": {Input: 0.05, Output: 0.08},
	})
	calls := []struct {
		model string
		u     Tokens
		// picodollars by hand: tokens × dollars per million × 1e6
		want int64
	}{
		// gpt-4o (default table): 1000 in of which 200 cached, 500 out
		// = 800×2.50 + 200×1.25 + 500×10.00 = 2000+250+5000 = 7250 µ$
		{"gpt-4o", Tokens{Input: 1000, CachedInput: 200, Output: 500}, 7250e6},
		// gpt-4o-2024-08-06 is priced as gpt-4o: 10 in, 10 out = 25+100 µ$
		{"gpt-4o-2024-08-06", Tokens{Input: 10, Output: 10}, 125e6},
		// gpt-4o-mini overridden: 1000 in (500 cached), 100 out
		// = 500×0.2 + 500×0.1 + 100×0.8 = 100+50+80 = 230 µ$
		{"gpt-4o-mini", Tokens{Input: 1000, CachedInput: 500, Output: 100}, 230e6},
		// claude-sonnet-4-5 dated: 2000 in = 1200 plain + 300 cache read
		// + 500 cache write, 1000 out
		// = 1200×3 + 300×0.30 + 500×3.75 + 1000×15 = 3600+90+1875+15000 µ$
		{"claude-sonnet-4-5-20250929", Tokens{Input: 2000, CachedInput: 300, CacheWrite: 500, Output: 1000}, 20565e6},
		// o3-mini: reasoning at the output price: 100×1.10 + 1000×4.40
		{"o3-mini", Tokens{Input: 100, Output: 1000, Reasoning: 800}, 4510e6},
		// thinker: 6 visible out × 2 + 4 reasoning × 3 = 24 µ$
		{"thinker", Tokens{Output: 10, Reasoning: 4}, 24e6},
		// house-model: 10×1 + 20×2 = 50 µ$
		{"house-model", Tokens{Input: 10, Output: 20}, 50e6},
		// gemini-2.5-flash-lite (not gemini-2.5-flash): 1e6 in × 0.10
		{"gemini-2.5-flash-lite", Tokens{Input: 1_000_000}, 100_000e6},
		// command-r7b-12-2024: 1000 in × 0.0375 + 1000 out × 0.15 = 37.5 + 150 µ$
		{"command-r7b-12-2024", Tokens{Input: 1000, Output: 1000}, 187_500_000},
		// a provider prefix: groq/llama-x1 = 100×0.05 + 100×0.08 = 13 µ$
		{"groq/llama-x1", Tokens{Input: 100, Output: 100}, 13e6},
		// mistral-large-latest via a provider prefix: 1000×2 + 1000×6
		{"mistral/mistral-large-latest", Tokens{Input: 1000, Output: 1000}, 8000e6},
	}
	var total, want int64
	for _, c := range calls {
		got := prices.Cost(c.model, c.u)
		if got.PriceMissing || got.Pico != c.want {
			t.Errorf("%s %+v: cost %d pico$ (missing %v), want %d", c.model, c.u, got.Pico, got.PriceMissing, c.want)
		}
		total += got.Pico
		want += c.want
	}
	if total != want || want != 7250e6+125e6+230e6+20565e6+4510e6+24e6+50e6+100_000e6+187_500_000+13e6+8000e6 {
		t.Errorf("workload total %d pico$, want %d", total, want)
	}
	if c := prices.Cost("my-private-model", Tokens{Input: 10, Output: 10}); !c.PriceMissing || c.Pico != 0 {
		t.Errorf("unpriced model: %+v, want flagged and free", c)
	}
}

func TestPricesRefuseNonsense(t *testing.T) {
	for _, p := range []Price{{Input: -1, Output: 1}, {}} {
		if _, err := NewPrices(map[string]Price{"m": p}); err == nil {
			t.Errorf("%+v accepted", p)
		}
	}
}

func TestCalendarWindowsInTimeZone(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York") // time/tzdata is embedded in the test binary
	if err != nil {
		t.Fatal(err)
	}
	// 2026-12-01 03:30 UTC is 2026-11-30 22:30 in New York (a Monday).
	now := time.Date(2026, 12, 1, 3, 30, 15, 0, time.UTC)
	cases := []struct {
		window, suffix string
		reset          time.Time
	}{
		{"minute", "mi20261130T2230", time.Date(2026, 11, 30, 22, 31, 0, 0, ny)},
		{"hour", "ho20261130T2200", time.Date(2026, 11, 30, 23, 0, 0, 0, ny)},
		{"day", "da20261130T0000", time.Date(2026, 12, 1, 0, 0, 0, 0, ny)},
		{"week", "we20261130T0000", time.Date(2026, 12, 7, 0, 0, 0, 0, ny)},
		{"month", "mo20261101T0000", time.Date(2026, 12, 1, 0, 0, 0, 0, ny)},
	}
	for _, c := range cases {
		w, err := parseWindow(c.window)
		if err != nil {
			t.Fatal(err)
		}
		s := w.slot(now, ny)
		if string(s.suffix[:s.n]) != c.suffix || !s.reset.Equal(c.reset) || s.span != 1 || s.ttl <= 0 {
			t.Errorf("%s: %+v, want suffix %s reset %s", c.window, s, c.suffix, c.reset)
		}
	}
	w, _ := parseWindow("rolling:1h")
	s1, s2 := w.slot(now, ny), w.slot(now.Add(time.Minute), ny)
	if s1.span != 60 || s2.bucket != s1.bucket+1 || s1.suffix != s2.suffix || string(s1.suffix[:s1.n]) != "r3600" {
		t.Errorf("rolling: %+v then %+v", s1, s2)
	}
	if _, err := parseWindow("fortnight"); err == nil {
		t.Error("fortnight accepted")
	}
}

// fixedClock is a clock tests move by hand.
type fixedClock struct{ t atomic.Int64 }

func (c *fixedClock) now() time.Time      { return time.Unix(0, c.t.Load()) }
func (c *fixedClock) add(d time.Duration) { c.t.Add(int64(d)) }
func newClock(t time.Time) *fixedClock    { c := &fixedClock{}; c.t.Store(t.UnixNano()); return c }

// meterOn is a meter that reserves the input as given (no margin) unless
// the options say otherwise.
func meterOn(s Store, o Options) *Meter {
	if o.InputMargin == 0 {
		o.InputMargin = -1
	}
	p, err := NewPrices(nil)
	if err != nil {
		panic(err)
	}
	return NewMeter(s, p, o)
}
func budget(tokens int64, usd float64) Budget {
	return Budget{Key: "user:alice", Window: "day", Tokens: tokens, USD: usd}
}

func TestReserveLowersOutputThenRefuses(t *testing.T) {
	ctx := context.Background()
	m := meterOn(NewMemoryStore(), Options{})
	req := &Request{Budgets: []Budget{budget(1000, 0)}, Model: "gpt-4o", InputTokens: 100, MaxOutputTokens: 4096}
	r, err := m.Reserve(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if r.OutputTokens() != 900 {
		t.Errorf("output cap %d, want lowered to 900", r.OutputTokens())
	}
	// While it is in flight, nothing is left.
	if _, err := m.Reserve(ctx, req); !isLimit(err, "budget", UnitTokens) {
		t.Fatalf("second call: %v, want a token budget refusal", err)
	}
	// Settled at 100 in + 300 out, 600 come back.
	if _, err := r.Settle(ctx, Tokens{Input: 100, Output: 300}); err != nil {
		t.Fatal(err)
	}
	r2, err := m.Reserve(ctx, req)
	if err != nil || r2.OutputTokens() != 500 {
		t.Fatalf("after settling: %v, output %v; want 500", err, r2)
	}
	// A settlement is charged once.
	r.Settle(ctx, Tokens{Input: 100, Output: 300})
	r2.Settle(ctx, Tokens{Input: 100, Output: 485})
	// 1000 - 400 - 585 = 15 left, less than the minimal answer of 16.
	_, err = m.Reserve(ctx, &Request{Budgets: []Budget{budget(1000, 0)}, Model: "gpt-4o", MaxOutputTokens: 100})
	var le *LimitError
	if !errors.As(err, &le) || le.Remaining != 15 || le.Limit != 1000 || le.Code() != "budget_exceeded" {
		t.Fatalf("refusal %#v", err)
	}
	h := http.Header{}
	le.SetHeaders(h)
	if h.Get("Retry-After") == "" || h.Get("X-Ratelimit-Limit-Tokens") != "1000" || h.Get("X-Ratelimit-Remaining-Tokens") != "15" || h.Get("X-Ratelimit-Reset-Tokens") == "" {
		t.Errorf("headers %v", h)
	}
}

func isLimit(err error, kind string, unit Unit) bool {
	var le *LimitError
	return errors.As(err, &le) && le.Kind == kind && le.Unit == unit
}

func TestReserveAddsInputMargin(t *testing.T) {
	m := NewMeter(NewMemoryStore(), nil, Options{})
	// 100 estimated input tokens reserve 125; 1000 - 125 leave 875 output.
	r, err := m.Reserve(context.Background(), &Request{Budgets: []Budget{budget(1000, 0)}, InputTokens: 100})
	if err != nil || r.OutputTokens() != 875 {
		t.Fatalf("%v %v", err, r)
	}
}

func TestReserveInDollars(t *testing.T) {
	ctx := context.Background()
	m := meterOn(NewMemoryStore(), Options{})
	// gpt-4o: 1000 in = $0.0025; $0.01 leaves $0.0075 = 750 output tokens at $10/M.
	req := &Request{Budgets: []Budget{budget(0, 0.01)}, Model: "gpt-4o", InputTokens: 1000, MaxOutputTokens: 4096}
	r, err := m.Reserve(ctx, req)
	if err != nil || r.OutputTokens() != 750 {
		t.Fatalf("reserve: %v; want output 750", err)
	}
	cost, _ := r.Settle(ctx, Tokens{Input: 1000, Output: 750})
	if cost.USD() != 0.01 {
		t.Errorf("cost %v", cost.USD())
	}
	if _, err := m.Reserve(ctx, req); !isLimit(err, "budget", UnitUSD) {
		t.Errorf("over the dollars: %v", err)
	}
	// An unpriced model is counted in tokens only: a dollar budget does not stop it.
	r, err = m.Reserve(ctx, &Request{Budgets: []Budget{budget(0, 0.01)}, Model: "no-price", InputTokens: 10})
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := r.Settle(ctx, Tokens{Input: 10, Output: 10}); !c.PriceMissing {
		t.Error("price not flagged missing")
	}
}

func TestRateLimits(t *testing.T) {
	ctx := context.Background()
	clock := newClock(time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC))
	m := meterOn(NewMemoryStore(), Options{Now: clock.now})
	req := &Request{Rate: RateLimits{Key: "user:bob", RequestsPerMinute: 3, TokensPerMinute: 1000}, InputTokens: 10, MaxOutputTokens: 100}
	for i := 0; i < 3; i++ {
		r, err := m.Reserve(ctx, req)
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		r.Settle(ctx, Tokens{Input: 10, Output: 10})
	}
	_, err := m.Reserve(ctx, req)
	var le *LimitError
	if !errors.As(err, &le) || le.Kind != "rate_limit" || le.Unit != UnitRequests || le.Code() != "rate_limit_exceeded" || le.RetryAfter > 5*time.Second {
		t.Fatalf("fourth call: %#v", err)
	}
	// A minute later the window has rolled on.
	clock.add(61 * time.Second)
	if _, err := m.Reserve(ctx, req); err != nil {
		t.Fatalf("a minute later: %v", err)
	}
	// Tokens per minute lower the output like a budget does.
	r, err := m.Reserve(ctx, &Request{Rate: RateLimits{Key: "user:carol", TokensPerMinute: 300}, InputTokens: 100, MaxOutputTokens: 1000})
	if err != nil || r.OutputTokens() != 200 {
		t.Fatalf("tokens per minute: %v", err)
	}
}

func TestRollingWindowForgetsSlowly(t *testing.T) {
	ctx := context.Background()
	clock := newClock(time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC))
	m := meterOn(NewMemoryStore(), Options{Now: clock.now})
	req := &Request{Budgets: []Budget{{Key: "team:x", Window: "rolling:1h", Tokens: 100}}, InputTokens: 50, MaxOutputTokens: 50}
	r, _ := m.Reserve(ctx, req)
	r.Settle(ctx, Tokens{Input: 50, Output: 50})
	clock.add(59 * time.Minute)
	if _, err := m.Reserve(ctx, req); err == nil {
		t.Fatal("spent 59 minutes ago and counted no more")
	}
	clock.add(2 * time.Minute)
	if _, err := m.Reserve(ctx, req); err != nil {
		t.Fatalf("61 minutes later: %v", err)
	}
}

// concurrentCalls runs 200 calls at once, each reserving 50 input plus
// 50 output tokens and using all it was granted, against a budget of
// 5,000 tokens: room for exactly 50 whole calls.
func concurrentCalls(t *testing.T, m *Meter) (admitted int64) {
	t.Helper()
	ctx := context.Background()
	req := &Request{Budgets: []Budget{{Key: "group:ml", Window: "day", Tokens: 5000}}, Model: "gpt-4o", InputTokens: 50, MaxOutputTokens: 50}
	var wg sync.WaitGroup
	var n atomic.Int64
	start := make(chan struct{})
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			r, err := m.Reserve(ctx, req)
			if err != nil {
				if !isLimit(err, "budget", UnitTokens) {
					t.Error(err)
				}
				return
			}
			n.Add(1)
			if _, err := r.Settle(ctx, Tokens{Input: 50, Output: r.OutputTokens()}); err != nil {
				t.Error(err)
			}
		}()
	}
	close(start)
	wg.Wait()
	st, err := m.Standings(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if st[0].UsedTokens > 5000 {
		t.Errorf("settled %d tokens against a budget of 5000", st[0].UsedTokens)
	}
	if st[0].UsedRequests != n.Load() {
		t.Errorf("%d calls counted, %d admitted", st[0].UsedRequests, n.Load())
	}
	return n.Load()
}

func TestConcurrentCallsNeverOverspendMemory(t *testing.T) {
	m := meterOn(NewMemoryStore(), Options{MinOutputTokens: 50})
	if n := concurrentCalls(t, m); n != 50 {
		t.Errorf("%d calls admitted, want exactly the 50 that fit", n)
	}
	// With the default minimal answer, late calls are lowered instead:
	// more are admitted, and the budget still holds.
	concurrentCalls(t, meterOn(NewMemoryStore(), Options{}))
}

func TestConcurrentCallsNeverOverspendRedis(t *testing.T) {
	url := startRedis(t)
	s, err := OpenRedisStore(url)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if n := concurrentCalls(t, meterOn(s, Options{MinOutputTokens: 50})); n != 50 {
		t.Errorf("%d calls admitted, want exactly the 50 that fit", n)
	}
}

func TestRedisWindowsAndRates(t *testing.T) {
	url := startRedis(t)
	s, err := OpenRedisStore(url)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	clock := newClock(time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC))
	m := meterOn(s, Options{Now: clock.now})
	req := &Request{Budgets: []Budget{{Key: "team:x", Window: "rolling:1h", Tokens: 1000, USD: 0.01}},
		Rate: RateLimits{Key: "u", RequestsPerMinute: 2}, Model: "gpt-4o", InputTokens: 100, MaxOutputTokens: 4096}
	// 1000 tokens - 100 in leave 900; $0.01 - 100 × $2.50/M leave 975
	// output tokens at $10/M: the tokens bind.
	r, err := m.Reserve(ctx, req)
	if err != nil || r.OutputTokens() != 900 {
		t.Fatalf("reserve: %v %v", err, r)
	}
	r.Settle(ctx, Tokens{Input: 100, Output: 100})
	st, _ := m.Standings(ctx, req)
	if st[0].UsedTokens != 200 || st[0].UsedUSD != 0.00125 || st[1].UsedRequests != 1 {
		t.Errorf("standings %+v", st)
	}
	r, _ = m.Reserve(ctx, req)
	r.Settle(ctx, Tokens{})
	if _, err := m.Reserve(ctx, req); !isLimit(err, "rate_limit", UnitRequests) {
		t.Errorf("third call in a minute: %v", err)
	}
	clock.add(2 * time.Hour)
	st, _ = m.Standings(ctx, req)
	if st[0].UsedTokens != 0 || st[1].UsedRequests != 0 {
		t.Errorf("two hours later: %+v", st)
	}
}

func TestStoreErrorFailsClosedOrFallsBack(t *testing.T) {
	s, err := OpenRedisStore("redis://127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	var warned atomic.Int32
	m := meterOn(s, Options{Warn: func(string, error) { warned.Add(1) }})
	closed := &Request{Budgets: []Budget{budget(1000, 0)}, InputTokens: 10}
	var se *StoreError
	if _, err := m.Reserve(ctx, closed); !errors.As(err, &se) {
		t.Fatalf("fail-closed budget: %v", err)
	}
	local := &Request{Budgets: []Budget{{Key: "user:alice", Window: "day", Tokens: 100, OnStoreError: OnStoreErrorLocal}}, InputTokens: 10, MaxOutputTokens: 90}
	r, err := m.Reserve(ctx, local)
	if err != nil || warned.Load() == 0 {
		t.Fatalf("local budget: %v (warned %d)", err, warned.Load())
	}
	// The local limit holds.
	if _, err := m.Reserve(ctx, local); !isLimit(err, "budget", UnitTokens) {
		t.Errorf("second local call: %v", err)
	}
	if _, err := r.Settle(ctx, Tokens{Input: 10, Output: 5}); err != nil {
		t.Errorf("settling locally: %v", err)
	}
}

func TestLocalStoreSurvivesRestartAndCrash(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "usage.log")
	s, err := OpenLocalStore(path, FileOptions{FlushInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	m := meterOn(s, Options{})
	req := &Request{Budgets: []Budget{budget(100_000, 0)}, Model: "gpt-4o", InputTokens: 100, MaxOutputTokens: 400}
	var held *Reservation
	for i := 0; i < 3; i++ {
		r, err := m.Reserve(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		if i == 2 {
			held = r // in flight when the process dies
			continue
		}
		r.Settle(ctx, Tokens{Input: 100, Output: 50})
	}
	s.Flush()
	// Changes after the last flush die with the process.
	r, _ := m.Reserve(ctx, req)
	r.Settle(ctx, Tokens{Input: 100, Output: 50})
	_ = held

	// "kill -9": the store is never closed; a new process opens the file.
	s2, err := OpenLocalStore(path, FileOptions{FlushInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	st, _ := meterOn(s2, Options{}).Standings(ctx, req)
	// 2 settled calls of 150, and the unsettled one at its full 500.
	if want := int64(2*150 + 500); st[0].UsedTokens != want || st[0].UsedRequests != 3 {
		t.Errorf("after the crash: %d tokens, %d calls; want %d, 3", st[0].UsedTokens, st[0].UsedRequests, want)
	}
	// A clean close keeps everything; a torn last line is dropped.
	m2 := meterOn(s2, Options{})
	r, _ = m2.Reserve(ctx, req)
	r.Settle(ctx, Tokens{Input: 100, Output: 100})
	if err := s2.Close(); err != nil {
		t.Fatal(err)
	}
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`s "b|user:alice|da2026` + "\n" + `r "torn`)
	f.Close()
	var warned atomic.Int32
	_, err = OpenLocalStore(path, FileOptions{Warn: func(string, error) { warned.Add(1) }})
	if err == nil {
		t.Fatal("a malformed whole line was accepted")
	}
}

func TestLocalStoreTornLineAndCompaction(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "usage.log")
	s, err := OpenLocalStore(path, FileOptions{FlushInterval: time.Hour, CompactBytes: 2 << 10})
	if err != nil {
		t.Fatal(err)
	}
	m := meterOn(s, Options{})
	req := &Request{Budgets: []Budget{budget(1e9, 0)}, Rate: RateLimits{Key: "u", RequestsPerMinute: 1e6}, InputTokens: 10, MaxOutputTokens: 10}
	for i := 0; i < 200; i++ {
		r, _ := m.Reserve(ctx, req)
		r.Settle(ctx, Tokens{Input: 10, Output: 5})
		if i%10 == 0 {
			s.Flush()
		}
	}
	s.Close()
	if fi, _ := os.Stat(path); fi.Size() > 4<<10 {
		t.Errorf("log is %d bytes, compaction past 2 KiB did not happen", fi.Size())
	}
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`r "b|user:alice|da20`)
	f.Close()
	var warned atomic.Int32
	s2, err := OpenLocalStore(path, FileOptions{Warn: func(string, error) { warned.Add(1) }})
	if err != nil || warned.Load() != 1 {
		t.Fatalf("torn line: %v, warned %d", err, warned.Load())
	}
	defer s2.Close()
	st, _ := meterOn(s2, Options{}).Standings(ctx, req)
	if st[0].UsedTokens != 200*15 || st[0].UsedRequests != 200 || st[1].UsedRequests != 200 {
		t.Errorf("after compaction and reload: %+v", st)
	}
}

func TestMemoryStoreForgetsExpiredPeriods(t *testing.T) {
	ctx := context.Background()
	clock := newClock(time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC))
	s := NewMemoryStore()
	s.now = clock.now
	m := meterOn(s, Options{Now: clock.now})
	for i := 0; i < 3000; i++ {
		req := &Request{Budgets: []Budget{{Key: "user:" + strconv.Itoa(i), Window: "minute", Tokens: 100}}, InputTokens: 1, MaxOutputTokens: 1}
		r, err := m.Reserve(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		r.Settle(ctx, Tokens{Input: 1, Output: 1})
		clock.add(5 * time.Second)
	}
	// 3000 minute budgets over 250 minutes, each kept an hour past its
	// minute: the ones older than that are dropped as the map grows.
	if n := len(s.counters); n >= 3000 {
		t.Errorf("%d counters kept", n)
	}
}

func TestSettleAsAnotherModel(t *testing.T) {
	ctx := context.Background()
	m := meterOn(NewMemoryStore(), Options{})
	req := &Request{Budgets: []Budget{budget(0, 1)}, Model: "gpt-4o-mini", InputTokens: 100, MaxOutputTokens: 100}
	r, err := m.Reserve(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	// Served by the fallback gpt-4o: 100 × $2.50/M + 50 × $10/M = 750 µ$.
	cost, _ := r.SettleAs(ctx, "gpt-4o", Tokens{Input: 100, Output: 50})
	st, _ := m.Standings(ctx, req)
	if cost.Pico != 750e6 || st[0].UsedUSD != 0.00075 {
		t.Errorf("cost %d pico$, counted $%v", cost.Pico, st[0].UsedUSD)
	}
}
