package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestUsageReportCommand(t *testing.T) {
	var query, auth string
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/usage/report" {
			http.NotFound(w, r)
			return
		}
		query, auth = r.URL.RawQuery, r.Header.Get("Authorization")
		w.Write([]byte(`{"object":"usage.report","from":"2026-12-01","to":"2026-12-31","group_by":["model","day"],"group":"eng",
"rows":[{"model":"fast","day":"2026-12-01","calls":2,"input_tokens":54,"output_tokens":14,"cost_usd":0.0000165}],
"totals":{"calls":2,"input_tokens":54,"output_tokens":14,"cost_usd":0.0000165}}`))
	}))
	defer gw.Close()
	t.Setenv("PORTCULLIS_API_KEY", "pcx_key")
	var out, errOut bytes.Buffer
	err := usageCommand([]string{"report", "--url", gw.URL, "--group-by", "model,day", "--from", "2026-12-01", "--to", "2026-12-31", "--group", "eng"}, &out, &errOut)
	if err != nil {
		t.Fatalf("%v: %s", err, errOut.String())
	}
	if query != "from=2026-12-01&group=eng&group_by=model%2Cday&to=2026-12-31" || auth != "Bearer pcx_key" {
		t.Errorf("asked %q with %q", query, auth)
	}
	for _, want := range []string{"usage of group eng, 2026-12-01 to 2026-12-31", "MODEL  DAY", "fast   2026-12-01  2      54     14      0.000017", "total"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the table lacks %q:\n%s", want, out.String())
		}
	}
}
