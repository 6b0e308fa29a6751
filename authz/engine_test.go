package authz

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"portcullis/authn"
)

// policyDir writes files (name → Rego source) into a new folder.
func policyDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, src := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func load(t *testing.T, dir string) *Engine {
	t.Helper()
	e, err := Load(context.Background(), dir)
	if err != nil {
		t.Fatalf("Load(%s): %v", dir, err)
	}
	return e
}

func input(groups []string, model string) *Input {
	return &Input{
		Identity: &authn.Identity{Type: authn.TypeAPIKey, Subject: "s", Groups: groups},
		Request:  Request{API: "chat", Model: model},
		Time:     time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
	}
}

// The repository's own policy decides by group and model.
func TestDefaultPolicyDecisions(t *testing.T) {
	e := load(t, "../policies")
	if !regexp.MustCompile(`^[0-9a-f]{16}$`).MatchString(e.Revision()) {
		t.Errorf("revision %q is not 16 hex digits", e.Revision())
	}
	tests := []struct {
		name       string
		in         *Input
		allow      bool
		wantReason string
	}{
		{"demo may use demo", input([]string{"demo"}, "demo"), true, ""},
		{"demo may use demo variants", input([]string{"demo"}, "demo-error-429"), true, ""},
		{"demo may not use gpt", input([]string{"demo"}, "gpt-4o-mini"), false, `model "gpt-4o-mini" is not allowed for groups ["demo"]`},
		{"engineering may use anything", input([]string{"engineering"}, "gpt-4.1"), true, ""},
		{"analysts may use gpt-4o-mini", input([]string{"analysts"}, "gpt-4o-mini"), true, ""},
		{"analysts may not use gpt-4.1", input([]string{"analysts"}, "gpt-4.1"), false, `model "gpt-4.1" is not allowed`},
		{"groups add up", input([]string{"demo", "analysts"}, "gpt-4o-mini"), true, ""},
		{"unknown group", input([]string{"sales"}, "demo"), false, "is not allowed"},
		{"no groups", input(nil, "demo"), false, "is not allowed"},
		{"no identity", &Input{Request: Request{API: "chat", Model: "demo"}}, false, "is not allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := e.Decide(context.Background(), tt.in)
			if err != nil {
				t.Fatalf("Decide: %v", err)
			}
			if d.Allow != tt.allow {
				t.Fatalf("allow = %v, want %v (reasons %q)", d.Allow, tt.allow, d.Reasons)
			}
			if tt.wantReason != "" && (len(d.Reasons) != 1 || !strings.Contains(d.Reasons[0], tt.wantReason)) {
				t.Errorf("reasons = %q, want one containing %q", d.Reasons, tt.wantReason)
			}
			if d.Revision != e.Revision() {
				t.Errorf("decision revision %q, engine revision %q", d.Revision, e.Revision())
			}
		})
	}
}

// The policy sees the input document documented in docs/policy.md.
func TestDecideInputDocument(t *testing.T) {
	e := load(t, policyDir(t, map[string]string{"p.rego": `package portcullis

decision := {"allow": true, "reasons": [json.marshal(input)]}
`}))
	in := &Input{
		Identity: &authn.Identity{
			Type: authn.TypeUser, Subject: "u1", Email: "a@example.com", Name: "Alice",
			Groups: []string{"g1", "g2"}, Roles: []string{"r"}, Issuer: "https://idp",
			Claims: map[string]any{"tenant": "acme", "n": 2},
		},
		Request: Request{
			API: "chat", Model: "m", Stream: true, MaxTokens: 64, EstimatedInputTokens: 12,
			Tools: []string{"get_weather"}, ToolChoice: "auto", Modalities: []string{"text"},
			ClientIP: "127.0.0.1", UserAgent: "ua/1",
		},
		Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("X", 3600)),
	}
	d, err := e.Decide(context.Background(), in)
	if err != nil || !d.Allow || len(d.Reasons) != 1 {
		t.Fatalf("Decide = %+v, %v", d, err)
	}
	want := `{"identity":{"claims":{"n":2,"tenant":"acme"},"email":"a@example.com","groups":["g1","g2"],"issuer":"https://idp","name":"Alice","roles":["r"],"subject":"u1","type":"user"},` +
		`"request":{"api":"chat","client_ip":"127.0.0.1","estimated_input_tokens":12,"max_tokens":64,"modalities":["text"],"model":"m","stream":true,"tool_choice":"auto","tools":["get_weather"],"user_agent":"ua/1"},` +
		`"time":{"now":"2026-01-02T02:04:05Z","unix":1767319445}}`
	if d.Reasons[0] != want {
		t.Errorf("input =\n%s\nwant\n%s", d.Reasons[0], want)
	}

	// A usage report beyond the caller's own carries its scope.
	d, err = e.Decide(context.Background(), &Input{Request: Request{API: "usage", UsageScope: &UsageScope{Group: "eng"}}})
	if err != nil || !strings.Contains(d.Reasons[0], `"usage_scope":{"group":"eng","subject":""}`) {
		t.Errorf("usage scope input = %q, %v", d.Reasons, err)
	}

	// A nil identity is an empty one, not an absent one.
	d, err = e.Decide(context.Background(), &Input{})
	if err != nil || !strings.Contains(d.Reasons[0], `"groups":[]`) || !strings.Contains(d.Reasons[0], `"subject":""`) {
		t.Errorf("nil identity input = %q, %v", d.Reasons, err)
	}
}

func TestDecideWellFormedDecision(t *testing.T) {
	e := load(t, policyDir(t, map[string]string{"p.rego": `package portcullis

decision := {
	"allow": true,
	"reasons": ["ok", "fine"],
	"max_tokens": 256,
	"log_content": true,
	"budgets": [{"key": "user:s", "window": "day", "tokens": 1000}, {"key": "group:ml", "window": "rolling:24h", "usd": 2.5}],
	"rate_limits": {"requests_per_minute": 60, "tokens_per_minute": 10000},
	"tools": {"allowed": ["get_weather"], "on_violation": "strip"},
}
`}))
	d, err := e.Decide(context.Background(), input(nil, "m"))
	if err != nil {
		t.Fatal(err)
	}
	if !d.Allow || d.MaxTokens != 256 || !d.LogContent || strings.Join(d.Reasons, ",") != "ok,fine" || d.Revision != e.Revision() {
		t.Errorf("decision = %+v", d)
	}
	want := []Budget{{Key: "user:s", Window: "day", Tokens: 1000}, {Key: "group:ml", Window: "rolling:24h", USD: 2.5}}
	if len(d.Budgets) != 2 || d.Budgets[0] != want[0] || d.Budgets[1] != want[1] {
		t.Errorf("budgets = %+v", d.Budgets)
	}
	if d.RateLimits != (RateLimits{RequestsPerMinute: 60, TokensPerMinute: 10000}) {
		t.Errorf("rate limits = %+v", d.RateLimits)
	}
	if !d.Tools.Restricted || d.Tools.OnViolation != ToolsStrip || !d.Tools.Permits("get_weather") || d.Tools.Permits("rm_rf") {
		t.Errorf("tools = %+v", d.Tools)
	}
}

// Anything but a well-formed decision denies, says why, and returns the
// error for the audit record.
func TestDecideFailsClosed(t *testing.T) {
	tests := []struct {
		name     string
		decision string
		wantErr  string
	}{
		{"allow missing", `{"reasons": ["looks fine"]}`, "decision.allow is missing"},
		{"allow a string", `{"allow": "true"}`, `decision.allow is the string "true"`},
		{"allow a number", `{"allow": 1}`, "decision.allow is the number 1"},
		{"allow null", `{"allow": null}`, "decision.allow is missing"},
		{"reasons a string", `{"allow": true, "reasons": "ok"}`, "decision.reasons is the string"},
		{"reasons not strings", `{"allow": true, "reasons": ["ok", 2]}`, "decision.reasons holds the number 2"},
		{"unknown field", `{"allow": true, "alow": true}`, `unknown field "alow"`},
		{"max_tokens negative", `{"allow": true, "max_tokens": -1}`, "decision.max_tokens is the number -1"},
		{"max_tokens fractional", `{"allow": true, "max_tokens": 1.5}`, "decision.max_tokens"},
		{"max_tokens a string", `{"allow": true, "max_tokens": "100"}`, "decision.max_tokens is the string"},
		{"log_content a string", `{"allow": true, "log_content": "yes"}`, "decision.log_content is the string"},
		{"budget without limit", `{"allow": true, "budgets": [{"key": "user:s", "window": "day"}]}`, "sets neither tokens nor usd"},
		{"budget bad window", `{"allow": true, "budgets": [{"key": "user:s", "window": "fortnight", "tokens": 5}]}`, `window is "fortnight"`},
		{"budget without key", `{"allow": true, "budgets": [{"window": "day", "tokens": 5}]}`, "decision.budgets[0].key is missing"},
		{"budget negative usd", `{"allow": true, "budgets": [{"key": "k", "window": "day", "usd": -1}]}`, "usd is the number -1"},
		{"rate limit typo", `{"allow": true, "rate_limits": {"request_per_minute": 5}}`, `unknown field "request_per_minute"`},
		{"tools without allowed", `{"allow": true, "tools": {"on_violation": "strip"}}`, "decision.tools.allowed is missing"},
		{"tools bad violation", `{"allow": true, "tools": {"allowed": "*", "on_violation": "warn"}}`, "on_violation is the string"},
		{"tools a list", `{"allow": true, "tools": ["*"]}`, "decision.tools is a"},
		{"not an object", `true`, "decision is bool"},
		{"a string", `"allow"`, "decision is string"},
		{"a list", `[{"allow": true}]`, "decision is []interface {}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := load(t, policyDir(t, map[string]string{"p.rego": "package portcullis\n\ndecision := " + tt.decision + "\n"}))
			d, err := e.Decide(context.Background(), input([]string{"engineering"}, "m"))
			assertDenied(t, d, err, tt.wantErr)
			if d.Revision != e.Revision() {
				t.Errorf("revision %q, want %q", d.Revision, e.Revision())
			}
		})
	}
}

func assertDenied(t *testing.T, d Decision, err error, wantErr string) {
	t.Helper()
	if err == nil {
		t.Fatalf("Decide returned no error; decision %+v", d)
	}
	if !strings.Contains(err.Error(), wantErr) {
		t.Errorf("error %q does not contain %q", err, wantErr)
	}
	if d.Allow {
		t.Errorf("decision allows: %+v", d)
	}
	if d.MaxTokens != 0 || d.LogContent {
		t.Errorf("a failed decision carries limits or permissions: %+v", d)
	}
	if len(d.Reasons) != 1 || !strings.HasPrefix(d.Reasons[0], "denied: ") || !strings.Contains(d.Reasons[0], wantErr) {
		t.Errorf("reasons = %q, want one \"denied: ...\" naming the cause", d.Reasons)
	}
}

func TestDecideUndefinedAndConflicting(t *testing.T) {
	tests := []struct {
		name    string
		src     string
		wantErr string
	}{
		{
			name: "undefined for this input",
			src: `package portcullis

decision := {"allow": true} if input.request.model == "only-this"
`,
			wantErr: "policy defined no decision",
		},
		{
			name: "conflicting values",
			src: `package portcullis

decision := {"allow": true} if input.request.api == "chat"
decision := {"allow": false} if input.request.model == "m"
`,
			wantErr: "evaluate policy",
		},
		{
			// A built-in's error makes its expression undefined.
			name: "built-in error",
			src: `package portcullis

decision := {"allow": to_number(input.request.model) > 0}
`,
			wantErr: "policy defined no decision",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := load(t, policyDir(t, map[string]string{"p.rego": tt.src}))
			d, err := e.Decide(context.Background(), input([]string{"engineering"}, "m"))
			assertDenied(t, d, err, tt.wantErr)
		})
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  []string
	}{
		{
			name: "syntax error",
			files: map[string]string{
				"good.rego":   "package portcullis\n\ndefault decision := {\"allow\": false}\n",
				"broken.rego": "package portcullis\n\n# a comment\nallowed := 1 +* 2\n",
			},
			want: []string{"broken.rego:4:", "load policy"},
		},
		{
			name:  "no decision rule",
			files: map[string]string{"p.rego": "package portcullis\n\nallow := true\n"},
			want:  []string{"defines the rule decision", DecisionQuery},
		},
		{
			name:  "decision in another package",
			files: map[string]string{"p.rego": "package gateway\n\ndecision := {\"allow\": true}\n"},
			want:  []string{"defines the rule decision"},
		},
		{
			name:  "no policy files",
			files: map[string]string{"README.md": "nothing here"},
			want:  []string{"no .rego files"},
		},
		{
			name:  "only tests",
			files: map[string]string{"p_test.rego": "package portcullis_test\n\ntest_x if true\n"},
			want:  []string{"no .rego files"},
		},
		{
			name:  "compile error",
			files: map[string]string{"p.rego": "package portcullis\n\ndecision := {\"allow\": undefined_function(1)}\n"},
			want:  []string{"p.rego:3", "undefined_function"},
		},
		{
			name:  "rego v0 syntax",
			files: map[string]string{"old.rego": "package portcullis\n\ndecision = {\"allow\": true} { true }\n"},
			want:  []string{"old.rego:3"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := policyDir(t, tt.files)
			e, err := Load(context.Background(), dir)
			if err == nil {
				t.Fatalf("Load succeeded: revision %s", e.Revision())
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}

	if _, err := Load(context.Background(), filepath.Join(t.TempDir(), "absent")); err == nil {
		t.Error("Load of a missing folder succeeded")
	}
}

// Test files are left to `portcullis policy test`: a broken one does not
// stop the gateway, and does not change the revision.
func TestLoadIgnoresTestFiles(t *testing.T) {
	src := "package portcullis\n\ndecision := {\"allow\": true}\n"
	plain := load(t, policyDir(t, map[string]string{"p.rego": src}))
	withTests := load(t, policyDir(t, map[string]string{
		"p.rego":               src,
		"p_test.rego":          "this is not rego at all {",
		"sub/nested_test.rego": "neither is this",
	}))
	if plain.Revision() != withTests.Revision() {
		t.Errorf("test files changed the revision: %s vs %s", plain.Revision(), withTests.Revision())
	}
}

// Files in subfolders are part of the policy.
func TestLoadSubfolders(t *testing.T) {
	e := load(t, policyDir(t, map[string]string{
		"main.rego":        "package portcullis\n\nimport data.portcullis.lib\n\ndecision := {\"allow\": lib.ok}\n",
		"lib/helpers.rego": "package portcullis.lib\n\nok := true\n",
	}))
	d, err := e.Decide(context.Background(), input(nil, "m"))
	if err != nil || !d.Allow {
		t.Fatalf("Decide = %+v, %v", d, err)
	}
}

func TestRevisionTracksFiles(t *testing.T) {
	src := "package portcullis\n\ndecision := {\"allow\": false}\n"
	dir := policyDir(t, map[string]string{"p.rego": src})
	first := load(t, dir).Revision()
	if again := load(t, dir).Revision(); again != first {
		t.Fatalf("same files, different revisions: %s, %s", first, again)
	}
	if other := load(t, policyDir(t, map[string]string{"p.rego": src})).Revision(); other != first {
		t.Errorf("the revision depends on the folder's path: %s vs %s", first, other)
	}

	seen := map[string]string{first: "original"}
	changes := []struct {
		name   string
		change func()
	}{
		{"content edited", func() {
			os.WriteFile(filepath.Join(dir, "p.rego"), []byte(src+"\n# tweak\n"), 0o644)
		}},
		{"file added", func() {
			os.WriteFile(filepath.Join(dir, "q.rego"), []byte("package portcullis\n\nx := 1\n"), 0o644)
		}},
		{"file renamed", func() {
			os.Rename(filepath.Join(dir, "q.rego"), filepath.Join(dir, "r.rego"))
		}},
		{"file removed", func() {
			os.Remove(filepath.Join(dir, "r.rego"))
			os.WriteFile(filepath.Join(dir, "p.rego"), []byte(src+"\n# tweak 2\n"), 0o644)
		}},
	}
	for _, c := range changes {
		c.change()
		rev := load(t, dir).Revision()
		if prev, ok := seen[rev]; ok {
			t.Errorf("after %s the revision %s is the same as after %s", c.name, rev, prev)
		}
		seen[rev] = c.name
	}
}

// One engine serves every request at once.
func TestDecideConcurrent(t *testing.T) {
	e := load(t, "../policies")
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			model, want := "demo", true
			if i%2 == 1 {
				model, want = "gpt-4.1", false
			}
			for range 50 {
				d, err := e.Decide(context.Background(), input([]string{"demo"}, model))
				if err != nil || d.Allow != want {
					t.Errorf("Decide(%s) = %+v, %v", model, d, err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestDecideCancelled(t *testing.T) {
	// A policy that takes long enough for the cancellation to land.
	e := load(t, policyDir(t, map[string]string{"p.rego": `package portcullis

decision := {"allow": count([1 |
	some i in numbers.range(1, 20000)
	some j in numbers.range(1, 20000)
	i == j
]) > 0}
`}))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	done := make(chan struct{})
	var d Decision
	var err error
	go func() {
		defer close(done)
		d, err = e.Decide(ctx, input(nil, "m"))
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Decide did not return after its context was cancelled")
	}
	assertDenied(t, d, err, "evaluate policy")
}
