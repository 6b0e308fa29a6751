package openai

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"

	"portcullis/adapters"
)

// seen is one request as the upstream received it.
type seen struct {
	method, path string
	header       http.Header
	body         string
}

// recorder is a fake upstream that records every request and answers with
// status and body.
func recorder(t *testing.T, status int, body string) (*httptest.Server, func() []seen) {
	t.Helper()
	var mu sync.Mutex
	var got []seen
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, seen{r.Method, r.URL.Path, r.Header.Clone(), string(b)})
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("x-request-id", "req_123")
		w.WriteHeader(status)
		io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	return srv, func() []seen {
		mu.Lock()
		defer mu.Unlock()
		return append([]seen(nil), got...)
	}
}

// transportHeaders are the headers Go's HTTP client adds by itself.
var transportHeaders = map[string]bool{"Content-Length": true, "Accept-Encoding": true}

func TestProviderSend(t *testing.T) {
	const key = "sk-upstream-secret"
	const body = `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`
	tests := []struct {
		name       string
		opts       Options
		stream     bool
		wantHeader map[string]string
	}{
		{
			name:   "key, extra headers, user agent",
			opts:   Options{APIKey: key, Headers: map[string]string{"OpenAI-Organization": "org-1", "openai-project": "proj_2"}, UserAgent: "portcullis/test"},
			stream: false,
			wantHeader: map[string]string{
				"Authorization": "Bearer " + key, "Openai-Organization": "org-1", "Openai-Project": "proj_2",
				"Accept": "application/json", "Content-Type": "application/json", "User-Agent": "portcullis/test",
			},
		},
		{
			name:   "stream",
			opts:   Options{APIKey: key, UserAgent: "portcullis/test"},
			stream: true,
			wantHeader: map[string]string{
				"Authorization": "Bearer " + key, "Accept": "text/event-stream",
				"Content-Type": "application/json", "User-Agent": "portcullis/test",
			},
		},
		{
			name:   "no key sends no Authorization",
			opts:   Options{UserAgent: "portcullis/test"},
			stream: false,
			wantHeader: map[string]string{
				"Accept": "application/json", "Content-Type": "application/json", "User-Agent": "portcullis/test",
			},
		},
		{
			name:   "configured headers cannot replace the key or Accept",
			opts:   Options{APIKey: key, Headers: map[string]string{"Authorization": "Bearer other", "Accept": "text/html"}, UserAgent: "portcullis/test"},
			stream: true,
			wantHeader: map[string]string{
				"Authorization": "Bearer " + key, "Accept": "text/event-stream",
				"Content-Type": "application/json", "User-Agent": "portcullis/test",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, requests := recorder(t, http.StatusOK, `{"ok":true}`)
			tt.opts.Name = "up"
			tt.opts.BaseURL = srv.URL + "/v1/"
			p := New(tt.opts)
			if p.Name() != "up" {
				t.Errorf("Name() = %q", p.Name())
			}
			resp, err := p.Send(context.Background(), &adapters.Call{Path: "/chat/completions", Body: []byte(body), Stream: tt.stream})
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || string(got) != `{"ok":true}` || resp.Header.Get("x-request-id") != "req_123" {
				t.Errorf("response = %d %s %v", resp.StatusCode, got, resp.Header)
			}

			reqs := requests()
			if len(reqs) != 1 {
				t.Fatalf("upstream got %d requests, want 1", len(reqs))
			}
			r := reqs[0]
			if r.method != http.MethodPost || r.path != "/v1/chat/completions" || r.body != body {
				t.Errorf("upstream got %s %s %s", r.method, r.path, r.body)
			}
			for name, want := range tt.wantHeader {
				if got := r.header.Values(name); len(got) != 1 || got[0] != want {
					t.Errorf("header %s = %q, want %q", name, got, want)
				}
			}
			var extra []string
			for name := range r.header {
				if _, ok := tt.wantHeader[name]; !ok && !transportHeaders[name] {
					extra = append(extra, name)
				}
			}
			sort.Strings(extra)
			if len(extra) > 0 {
				t.Errorf("upstream got headers nobody configured: %v", extra)
			}
		})
	}
}

// Send returns the upstream's response whatever its status; the error is
// only for calls that got no response.
func TestProviderSendUpstreamError(t *testing.T) {
	srv, _ := recorder(t, http.StatusTooManyRequests, string(fixture(t, "error_429.json")))
	p := New(Options{Name: "up", BaseURL: srv.URL, APIKey: "k"})
	resp, err := p.Send(context.Background(), &adapters.Call{Path: "/chat/completions", Body: []byte(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusTooManyRequests || ReadSummary(b).Error.CodeString() != "rate_limit_exceeded" {
		t.Errorf("response = %d %s", resp.StatusCode, b)
	}
}

func TestProviderSendFailures(t *testing.T) {
	const key = "sk-do-not-leak"
	srv, _ := recorder(t, http.StatusOK, `{}`)
	closedURL := srv.URL
	srv.Close()

	p := New(Options{Name: "gone", BaseURL: closedURL, APIKey: key})
	_, err := p.Send(context.Background(), &adapters.Call{Path: "/chat/completions", Body: []byte(`{}`)})
	if err == nil {
		t.Fatal("Send to a closed server succeeded")
	}
	if !strings.HasPrefix(err.Error(), "provider gone: ") || strings.Contains(err.Error(), key) {
		t.Errorf("error = %q; want it to name the provider and not the key", err)
	}

	live, _ := recorder(t, http.StatusOK, `{}`)
	p = New(Options{Name: "up", BaseURL: live.URL, APIKey: key})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := p.Send(ctx, &adapters.Call{Path: "/chat/completions", Body: []byte(`{}`)}); !errors.Is(err, context.Canceled) {
		t.Errorf("Send with a cancelled context: %v, want context.Canceled", err)
	}

	p = New(Options{Name: "bad", BaseURL: "http://in valid"})
	if _, err := p.Send(context.Background(), &adapters.Call{Path: "/x"}); err == nil || !strings.Contains(err.Error(), "provider bad") {
		t.Errorf("Send with a bad base URL: %v", err)
	}
}

// Concurrent calls share the provider's headers without racing.
func TestProviderSendConcurrent(t *testing.T) {
	srv, requests := recorder(t, http.StatusOK, `{}`)
	p := New(Options{Name: "up", BaseURL: srv.URL, APIKey: "k", Headers: map[string]string{"X-A": "1"}})
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := p.Send(context.Background(), &adapters.Call{Path: "/chat/completions", Body: []byte(`{}`), Stream: i%2 == 0})
			if err != nil {
				t.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}()
	}
	wg.Wait()
	for _, r := range requests() {
		if len(r.header.Values("Accept")) != 1 || r.header.Get("Authorization") != "Bearer k" || r.header.Get("X-A") != "1" {
			t.Errorf("headers = %v", r.header)
		}
	}
}

func TestRedact(t *testing.T) {
	p := New(Options{Name: "up", BaseURL: "http://x", APIKey: "sk-abc"})
	if got := p.Redact("bad key sk-abc, really sk-abc"); got != "bad key [redacted], really [redacted]" {
		t.Errorf("Redact = %q", got)
	}
	p = New(Options{Name: "up", BaseURL: "http://x", Headers: map[string]string{"X-Gateway-Token": "tok-0123456789abcdef", "OpenAI-Beta": "v2"}})
	if got := p.Redact("echo tok-0123456789abcdef with v2"); got != "echo [redacted] with v2" {
		t.Errorf("Redact of a header secret = %q", got)
	}
	if got := New(Options{Name: "up", BaseURL: "http://x"}).Redact("text"); got != "text" {
		t.Errorf("Redact without a key = %q", got)
	}
}
