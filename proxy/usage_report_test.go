package proxy_test

import (
	"encoding/json"
	"math"
	"net/http"
	"reflect"
	"sync/atomic"
	"testing"
	"time"

	"portcullis/internal/testkit"
	"portcullis/usage"
)

// reportPolicy allows every call; its decision for api "usage" lets the
// engineering group (alice) see any report, and nobody else.
const reportPolicy = `{"allow": true} if {
	input.request.api != "usage"
} else := {"allow": true} if {
	"engineering" in input.identity.groups
	input.request.usage_scope
} else := {"allow": false}`

type usageReportRow struct {
	Identity     string  `json:"identity,omitempty"`
	Group        string  `json:"group,omitempty"`
	Model        string  `json:"model,omitempty"`
	Provider     string  `json:"provider,omitempty"`
	Day          string  `json:"day,omitempty"`
	Calls        int64   `json:"calls"`
	InputTokens  int64   `json:"input_tokens"`
	OutputTokens int64   `json:"output_tokens"`
	CostUSD      float64 `json:"cost_usd"`
}

type reportAnswer struct {
	Rows   []usageReportRow `json:"rows"`
	Totals usageReportRow   `json:"totals"`
}

func getReport(t *testing.T, h *harness, key, query string) (int, reportAnswer, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, h.url+"/v1/usage/report?"+query, nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body := readAll(t, resp.Body)
	var ans reportAnswer
	if resp.StatusCode == 200 {
		if err := json.Unmarshal(body, &ans); err != nil {
			t.Fatalf("%s: %v", body, err)
		}
	}
	return resp.StatusCode, ans, string(body)
}

// row is a report row with its cost in microdollars, rounded to the
// picodollar, for comparing with a hand computation.
func roundRows(rows []usageReportRow) []usageReportRow {
	out := append([]usageReportRow(nil), rows...)
	for i := range out {
		out[i].CostUSD = math.Round(out[i].CostUSD*1e12) / 1e6
	}
	return out
}

func testReportWorkload(t *testing.T, store usage.Store) {
	prices, err := usage.NewPrices(nil)
	if err != nil {
		t.Fatal(err)
	}
	var now atomic.Pointer[time.Time]
	setDay := func(d int) { tm := time.Date(2026, 12, d, 12, 0, 0, 0, time.UTC); now.Store(&tm) }
	setDay(1)
	m := usage.NewMeter(store, prices, usage.Options{Now: func() time.Time { return *now.Load() }})
	ant := testkit.NewAnthropicUpstream(t, anthropicKey)
	h := newHarness(t, harnessOptions{
		policyDir: policyFolder(t, reportPolicy),
		meter:     m,
		providers: "\n  - name: anthropic\n    type: anthropic\n    base_url: " + ant.URL + "\n    api_key: " + anthropicKey,
		models:    "\n  - name: claude\n    provider: anthropic\n    upstream_model: claude-sonnet-4-5",
	})
	// By hand, from usage/prices.json and the fixtures' usage (as in
	// TestMixedWorkloadCostMatchesPriceTable): smart (gpt-4o-mini on the
	// provider "upstream") 27 in, 7 out, 8.25 µ$; claude
	// (claude-sonnet-4-5 on "anthropic") 24 in, 10 out, 222 µ$.
	const smart = `{"model":"smart","messages":[{"role":"user","content":"Name the three primary colors."}]}`
	const claude = `{"model":"claude","messages":[{"role":"user","content":"Name the three primary colors."}]}`
	work := []struct {
		day       int
		key, body string
	}{
		{1, engKey, smart}, {1, engKey, claude}, {1, demoKey, smart},
		{2, engKey, smart}, {2, demoKey, claude}, {2, demoKey, claude}, {2, demoKey, smart},
	}
	for _, w := range work {
		setDay(w.day)
		resp := h.post(w.key, w.body)
		readAll(t, resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	h.records.last(t, len(work))
	r := func(keys usageReportRow, calls, in, out int64, micro float64) usageReportRow {
		keys.Calls, keys.InputTokens, keys.OutputTokens, keys.CostUSD = calls, in, out, micro
		return keys
	}
	all := r(usageReportRow{}, 7, 180, 58, 699)
	alice := r(usageReportRow{}, 3, 78, 24, 238.5)
	bob := r(usageReportRow{}, 4, 102, 34, 460.5)
	const span = "&from=2026-12-01&to=2026-12-31"
	cases := []struct {
		key, query string
		rows       []usageReportRow
		total      usageReportRow
	}{
		{engKey, "group_by=model&all=true", []usageReportRow{
			r(usageReportRow{Model: "claude"}, 3, 72, 30, 666), r(usageReportRow{Model: "smart"}, 4, 108, 28, 33)}, all},
		{engKey, "group_by=provider&all=true", []usageReportRow{
			r(usageReportRow{Provider: "anthropic"}, 3, 72, 30, 666), r(usageReportRow{Provider: "upstream"}, 4, 108, 28, 33)}, all},
		{engKey, "group_by=day&all=true", []usageReportRow{
			r(usageReportRow{Day: "2026-12-01"}, 3, 78, 24, 238.5), r(usageReportRow{Day: "2026-12-02"}, 4, 102, 34, 460.5)}, all},
		{engKey, "group_by=identity,day&all=true", []usageReportRow{
			r(usageReportRow{Identity: "alice", Day: "2026-12-01"}, 2, 51, 17, 230.25),
			r(usageReportRow{Identity: "alice", Day: "2026-12-02"}, 1, 27, 7, 8.25),
			r(usageReportRow{Identity: "bob", Day: "2026-12-01"}, 1, 27, 7, 8.25),
			r(usageReportRow{Identity: "bob", Day: "2026-12-02"}, 3, 75, 27, 452.25)}, all},
		{engKey, "group_by=group&all=true", []usageReportRow{
			r(usageReportRow{Group: "demo"}, 4, 102, 34, 460.5), r(usageReportRow{Group: "engineering"}, 3, 78, 24, 238.5)}, all},
		// Own reports need no admin: bob's own, by model.
		{demoKey, "group_by=model", []usageReportRow{
			r(usageReportRow{Model: "claude"}, 2, 48, 20, 444), r(usageReportRow{Model: "smart"}, 2, 54, 14, 16.5)}, bob},
		{demoKey, "group_by=model&subject=bob", []usageReportRow{
			r(usageReportRow{Model: "claude"}, 2, 48, 20, 444), r(usageReportRow{Model: "smart"}, 2, 54, 14, 16.5)}, bob},
		{engKey, "group_by=provider&group=engineering", []usageReportRow{
			r(usageReportRow{Provider: "anthropic"}, 1, 24, 10, 222), r(usageReportRow{Provider: "upstream"}, 2, 54, 14, 16.5)}, alice},
		{engKey, "subject=bob", []usageReportRow{r(usageReportRow{}, 4, 102, 34, 460.5)}, bob},
	}
	for _, c := range cases {
		status, ans, body := getReport(t, h, c.key, c.query+span)
		if status != 200 {
			t.Errorf("%s: %d %s", c.query, status, body)
			continue
		}
		if got := roundRows(ans.Rows); !reflect.DeepEqual(got, c.rows) {
			t.Errorf("%s: rows\n%+v, want\n%+v", c.query, got, c.rows)
		}
		if got := roundRows([]usageReportRow{ans.Totals})[0]; got != c.total {
			t.Errorf("%s: totals %+v, want %+v", c.query, got, c.total)
		}
	}
}

func TestUsageReportMixedWorkloadEmbedded(t *testing.T) {
	testReportWorkload(t, usage.NewMemoryStore())
}

func TestUsageReportMixedWorkloadRedis(t *testing.T) {
	rs, err := usage.OpenRedisStore(testkit.StartRedis(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rs.Close() })
	testReportWorkload(t, rs)
}

// Another subject's, a group's or everyone's report needs the policy's
// allowing decision for api "usage"; errors are 400 in OpenAI's shape.
func TestUsageReportScopeNeedsThePolicy(t *testing.T) {
	h := newHarness(t, harnessOptions{policyDir: policyFolder(t, reportPolicy), meter: newMeter(t)})
	resp := h.post(demoKey, `{"model":"smart","messages":[{"role":"user","content":"Name the three primary colors."}]}`)
	readAll(t, resp.Body)
	for _, c := range []struct {
		key, query string
		status     int
		code       string
	}{
		{demoKey, "", 200, ""},
		{demoKey, "subject=bob&group_by=model,day", 200, ""},
		{demoKey, "subject=alice", 403, "usage_scope_denied"},
		{demoKey, "group=demo", 403, "usage_scope_denied"},
		{demoKey, "all=true", 403, "usage_scope_denied"},
		{engKey, "subject=bob", 200, ""},
		{engKey, "group=demo&group_by=model", 200, ""},
		{engKey, "all=true&group_by=identity", 200, ""},
		{demoKey, "group_by=colour", 400, "invalid_report"},
		{demoKey, "from=yesterday", 400, "invalid_report"},
		{demoKey, "from=2026-12-31&to=2026-12-01", 400, "invalid_report"},
	} {
		status, _, body := getReport(t, h, c.key, c.query)
		var e errorAnswer
		if c.status != 200 {
			if err := json.Unmarshal([]byte(body), &e); err != nil {
				t.Errorf("%s: %s: %v", c.query, body, err)
			}
		}
		if status != c.status || e.Error.Code != c.code {
			t.Errorf("%s as %s: %d %s, want %d %s", c.query, c.key, status, body, c.status, c.code)
		}
	}
	// Audited like any call.
	rec := h.records.last(t, 1+11)
	if rec.Endpoint != "/v1/usage/report" || rec.Identity.Subject != "bob" || rec.Status != 400 {
		t.Errorf("last record %+v", rec)
	}
}
