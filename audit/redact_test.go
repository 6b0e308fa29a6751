package audit

import (
	"encoding/json"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Each pattern removes its kind of secret, and leaves alone ordinary text
// that looks a little like it.
func TestRedactSecrets(t *testing.T) {
	privateKey := "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA1x2y3z\nq8w7e6r5t4y3u2i1o0p\n-----END RSA PRIVATE KEY-----"
	jwt := "eyJhbGciOiJSUzI1NiIsImtpZCI6IjEifQ.eyJzdWIiOiJhbGljZSIsImV4cCI6MTcwMDAwMDAwMH0.c2lnbmF0dXJlLWJ5dGVzLWhlcmU"
	for _, tc := range []struct {
		name, in, want string
		kinds          map[string]int
	}{
		// Each pattern redacts.
		{"openai key", "my key is sk-proj-4fT9aQ2bX7LmN3pR8sV1wY6z, thanks",
			"my key is [REDACTED:openai_api_key], thanks", map[string]int{"openai_api_key": 1}},
		{"anthropic key", "ANTHROPIC_KEY sk-ant-api03-Zx81Kq0Lm4Np7Qr2St5Uv9Wx_yz-AB12",
			"ANTHROPIC_KEY [REDACTED:anthropic_api_key]", map[string]int{"anthropic_api_key": 1}},
		{"aws access key", "aws id AKIAIOSFODNN7EXAMPLE in the env",
			"aws id [REDACTED:aws_access_key_id] in the env", map[string]int{"aws_access_key_id": 1}},
		{"github classic token", "token ghp_" + strings.Repeat("a1B2", 9) + " works",
			"token [REDACTED:github_token] works", map[string]int{"github_token": 1}},
		{"github fine-grained token", "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuv",
			"[REDACTED:github_token]", map[string]int{"github_token": 1}},
		{"google api key", "key=AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY&q=x",
			"key=[REDACTED:google_api_key]&q=x", map[string]int{"google_api_key": 1}},
		{"slack bot token", "SLACK xoxb-1234567890-0987654321-AbCdEfGhIjKl",
			"SLACK [REDACTED:slack_token]", map[string]int{"slack_token": 1}},
		{"slack webhook", "post to https://hooks.slack.com/services/T000/B000/XXXXXXXX now",
			"post to [REDACTED:slack_webhook] now", map[string]int{"slack_webhook": 1}},
		{"jwt", "id_token: " + jwt, "id_token: [REDACTED:jwt]", map[string]int{"jwt": 1}},
		{"bearer token", `curl -H "Authorization: Bearer 9f8e7d6c5b4a3f2e1d0c9b8a"`,
			`curl -H "Authorization: Bearer [REDACTED:bearer_token]"`, map[string]int{"bearer_token": 1}},
		{"bearer jwt is named a jwt", "Authorization: Bearer " + jwt,
			"Authorization: Bearer [REDACTED:jwt]", map[string]int{"jwt": 1}},
		{"password pair", "db: host=pg password=hunter2 port=5432",
			"db: host=pg password=[REDACTED:password] port=5432", map[string]int{"password": 1}},
		{"quoted json secret", `{"client_secret": "abc 123", "name": "x"}`,
			`{"client_secret": "[REDACTED:password]", "name": "x"}`, map[string]int{"password": 1}},
		{"env secret with prefix", "export AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG",
			"export AWS_SECRET_ACCESS_KEY=[REDACTED:password]", map[string]int{"password": 1}},
		{"command-line flag", "run --password=hunter2 now", "run --password=[REDACTED:password] now", map[string]int{"password": 1}},
		{"name after dashes", "x--db_pwd: s3cr3t", "x--db_pwd: [REDACTED:password]", map[string]int{"password": 1}},
		{"key on a later line", strings.Repeat("plain words\n", 50) + "key: sk-proj-4fT9aQ2bX7LmN3pR8sV1wY6z",
			strings.Repeat("plain words\n", 50) + "key: [REDACTED:openai_api_key]", map[string]int{"openai_api_key": 1}},
		{"yaml api key", "api_key: 'q1w2e3r4'", "api_key: '[REDACTED:password]'", map[string]int{"password": 1}},
		{"url credentials", "clone https://bob:s3cr3t@git.example.com/repo.git",
			"clone https://bob:[REDACTED:url_credentials]@git.example.com/repo.git", map[string]int{"url_credentials": 1}},
		{"private key block", "here:\n" + privateKey + "\nbye",
			"here:\n[REDACTED:private_key]\nbye", map[string]int{"private_key": 1}},
		{"private key cut short", "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA",
			"[REDACTED:private_key]", map[string]int{"private_key": 1}},
		{"two of a kind", "sk-a1b2c3d4e5f6g7h8i9j0k1 and sk-z9y8x7w6v5u4t3s2r1q0p9",
			"[REDACTED:openai_api_key] and [REDACTED:openai_api_key]", map[string]int{"openai_api_key": 2}},

		// Ordinary text stays as it is.
		{"prose", "Name the three primary colors, then explain a task-management app.", "", nil},
		{"hyphenated word after sk-", "use sk-learn-pipeline-example-and-friends for this", "", nil},
		{"short sk- identifier", "the sk-1234 part number", "", nil},
		{"word containing AKIA", "AKIAxyz is not a key, nor is AKIA123", "", nil},
		{"gh prefix word", "ghost ghp_short gho_", "", nil},
		{"AIza too short", "AIzaSyShort", "", nil},
		{"xox word", "xoxo, see you", "", nil},
		{"eyJ without dots", "eyJhbGciOiJIUzI1NiJ9 alone", "", nil},
		{"bearer in prose", "The bearer of this letter is responsibilities-free.", "", nil},
		{"password without value", "I forgot my password yesterday; the password policy needs 12 characters.", "", nil},
		{"url without credentials", "see https://example.com:8443/docs and mailto:bob@example.com", "", nil},
		{"public key block", "-----BEGIN PUBLIC KEY-----\nMFkwEwYH\n-----END PUBLIC KEY-----", "", nil},
		{"code", "for i := 0; i < n; i++ { sum += a[i] }", "", nil},
		{"key inside a word", "tasksk-proj-4fT9aQ2bX7LmN3pR8sV1wY6z", "", nil},
		{"name inside a word", "mypassword=x and keypwd: y", "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := tc.want
			if want == "" {
				want = tc.in
			}
			found := map[string]int{}
			got := redactSecrets(tc.in, found)
			if got != want {
				t.Errorf("redactSecrets(%q)\n got %q\nwant %q", tc.in, got, want)
			}
			if len(found) != len(tc.kinds) {
				t.Errorf("found %v, want %v", found, tc.kinds)
			}
			for k, n := range tc.kinds {
				if found[k] != n {
					t.Errorf("found %v, want %v", found, tc.kinds)
				}
			}
		})
	}
}

// Seal redacts before it cuts, so a secret that straddles the bound is not
// half kept, and it cuts the prompt and the completion to the bound each.
func TestContentSeal(t *testing.T) {
	key := "sk-proj-4fT9aQ2bX7LmN3pR8sV1wY6z"
	c := &Content{
		Messages: []Message{
			{Role: "system", Text: "be brief"},
			{Role: "user", Text: strings.Repeat("a", 20) + " " + key},
			{Role: "user", Text: "never kept"},
		},
		Completion: "héllo wörld " + strings.Repeat("z", 100),
		ToolCalls:  []ToolCall{{ID: "c1", Name: "f", Arguments: `{"password":"x1"}`}},
	}
	c.Seal(32)
	if c.Messages[0].Text != "be brief" {
		t.Errorf("first message %q", c.Messages[0].Text)
	}
	if got := c.Messages[1].Text; strings.Contains(got, "4fT9") || !strings.HasPrefix(got, strings.Repeat("a", 20)+" [RE") || len(got) != 32-len("be brief") {
		t.Errorf("second message %q: want the key redacted, then cut to the rest of the bound", got)
	}
	if c.Messages[2].Text != "" {
		t.Errorf("third message %q: want nothing left of the bound", c.Messages[2].Text)
	}
	if len(c.Completion) > 32 || !strings.HasPrefix(c.Completion, "héllo wörld") || !strings.HasPrefix("héllo wörld "+strings.Repeat("z", 100), c.Completion) {
		t.Errorf("completion %q", c.Completion)
	}
	if c.ToolCalls[0].Arguments != "" {
		t.Errorf("tool call arguments %q: the completion used the bound", c.ToolCalls[0].Arguments)
	}
	if !c.Truncated {
		t.Error("not marked truncated")
	}
	if len(c.Redactions) != 2 || c.Redactions[0] != (Redaction{"openai_api_key", 1}) || c.Redactions[1] != (Redaction{"password", 1}) {
		t.Errorf("redactions %v", c.Redactions)
	}

	small := &Content{Messages: []Message{{Role: "user", Text: "hi"}}, Completion: "hello"}
	small.Seal(32)
	if small.Truncated || small.Messages[0].Text != "hi" || small.Completion != "hello" || len(small.Redactions) != 0 {
		t.Errorf("small content changed: %+v", small)
	}
}

// A record has content keys only when it holds content.
func TestRecordContentKeys(t *testing.T) {
	enc := zapcore.NewJSONEncoder(zapcore.EncoderConfig{})
	line := func(r *Record) map[string]json.RawMessage {
		buf, err := enc.EncodeEntry(zapcore.Entry{}, []zapcore.Field{zap.Inline(r)})
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	plain := line(&Record{RequestID: "r1", TraceID: "4bf92f3577b34da6a3ce929d0e0e4736"})
	for _, k := range []string{"content", "content_truncated", "redactions"} {
		if _, ok := plain[k]; ok {
			t.Errorf("record without content has %q", k)
		}
	}
	if string(plain["trace_id"]) != `"4bf92f3577b34da6a3ce929d0e0e4736"` {
		t.Errorf("trace_id = %s", plain["trace_id"])
	}
	c := &Content{Messages: []Message{{Role: "user", Text: "hi"}}, Completion: "hello", Truncated: true,
		Redactions: []Redaction{{"jwt", 2}}}
	full := line(&Record{Content: c})
	if string(full["content"]) != `{"messages":[{"role":"user","text":"hi"}],"completion":"hello","tool_calls":[]}` ||
		string(full["content_truncated"]) != "true" || string(full["redactions"]) != `[{"kind":"jwt","count":2}]` {
		t.Errorf("content %s truncated %s redactions %s", full["content"], full["content_truncated"], full["redactions"])
	}
}
