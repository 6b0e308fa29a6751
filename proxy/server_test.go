package proxy_test

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"portcullis/internal/testkit"
)

// serve runs the harness's gateway on its own listener until the returned
// cancel is called; done yields ServeListener's result.
func serve(t *testing.T, h *harness) (url string, stop context.CancelFunc, done <-chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- h.srv.ServeListener(ctx, ln) }()
	t.Cleanup(cancel)
	return "http://" + ln.Addr().String(), cancel, errc
}

func postTo(t *testing.T, url, key, body string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// On shutdown the gateway stops taking new requests but lets a stream in
// flight run to its end.
func TestShutdownDrainsStreams(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	h.upstream.Hold = make(chan struct{})
	url, stop, done := serve(t, h)

	resp := postTo(t, url, engKey, `{"model":"smart","stream":true,"messages":[{"role":"user","content":"hi"}]}`)
	defer resp.Body.Close()
	r := bufio.NewReader(resp.Body)
	testkit.ReadEvent(t, r)

	stop()
	// Once shutdown has begun, the listener is closed: new calls fail.
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("tcp", strings.TrimPrefix(url, "http://"))
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("the listener still accepts connections after shutdown began")
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case err := <-done:
		t.Fatalf("server returned (%v) while a stream was in flight", err)
	default:
	}

	close(h.upstream.Hold)
	rest := string(readAll(t, r))
	if !strings.HasSuffix(rest, "data: [DONE]\n\n") {
		t.Errorf("drained stream did not complete: %q", rest)
	}
	if err := <-done; err != nil {
		t.Fatalf("serve: %v", err)
	}
	if rec := h.records.last(t, 1); rec.Status != 200 || rec.ErrorClass != "" {
		t.Errorf("record status %d class %q", rec.Status, rec.ErrorClass)
	}
}

// A stream still running when the grace period ends is cut, and its audit
// record is written before Serve returns.
func TestShutdownGraceCutsStreams(t *testing.T) {
	h := newHarness(t, harnessOptions{grace: "100ms"})
	url, stop, done := serve(t, h)
	resp := postTo(t, url, demoKey, `{"model":"demo-hang","stream":true,"messages":[{"role":"user","content":"hi"}]}`)
	defer resp.Body.Close()
	r := bufio.NewReader(resp.Body)
	testkit.ReadEvent(t, r)
	testkit.ReadEvent(t, r)

	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the grace period did not end the hanging stream")
	}
	h.records.mu.Lock()
	n := len(h.records.records)
	h.records.mu.Unlock()
	if n != 1 {
		t.Fatalf("%d audit records written by the time Serve returned, want 1", n)
	}
	if rec := h.records.last(t, 1); rec.Model != "demo-hang" || rec.ErrorClass != "shutdown" {
		t.Errorf("record model %q class %q", rec.Model, rec.ErrorClass)
	}
}

func TestHealthAndModels(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	resp, err := http.Get(h.url + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz: %v %v", err, resp)
	}
	resp.Body.Close()
	resp, err = http.Get(h.url + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	body := string(readAll(t, resp.Body))
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(body, `"status":"ready"`) || !strings.Contains(body, `"name":"upstream"`) {
		t.Errorf("readyz %d %s", resp.StatusCode, body)
	}

	req, _ := http.NewRequest(http.MethodGet, h.url+"/v1/models", nil)
	req.Header.Set("x-api-key", engKey)
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body = string(readAll(t, resp.Body))
	resp.Body.Close()
	for _, want := range []string{`"object":"list"`, `"id":"smart"`, `"id":"demo"`, `"owned_by":"upstream"`} {
		if !strings.Contains(body, want) {
			t.Errorf("models list lacks %s: %s", want, body)
		}
	}
	if rec := h.records.last(t, 1); rec.Endpoint != "/v1/models" || rec.Identity.Subject != "alice" {
		t.Errorf("models call record %+v", rec)
	}
}

// X-Forwarded-For is believed only from a trusted proxy, and then only up
// to the nearest hop that is not one: a client cannot pick its address.
func TestClientIPBehindTrustedProxies(t *testing.T) {
	for _, tc := range []struct {
		name, trusted, forwarded, want string
	}{
		{"no proxy is trusted", "[]", "203.0.113.9", "127.0.0.1"},
		{"from a trusted proxy", "[127.0.0.0/8]", "203.0.113.9", "203.0.113.9"},
		{"a client's own header is not believed", "[127.0.0.0/8]", "198.51.100.1, 203.0.113.9", "203.0.113.9"},
		{"a chain of trusted proxies", "[127.0.0.0/8, 10.0.0.0/8]", "203.0.113.9, 10.0.0.5", "203.0.113.9"},
		{"a malformed hop", "[127.0.0.0/8]", "not-an-address", "127.0.0.1"},
		{"no header", "[127.0.0.0/8]", "", "127.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, harnessOptions{trustedProxies: tc.trusted})
			req, _ := http.NewRequest(http.MethodPost, h.url+"/v1/chat/completions", strings.NewReader(chatBody))
			req.Header.Set("Authorization", "Bearer "+engKey)
			if tc.forwarded != "" {
				req.Header.Set("X-Forwarded-For", tc.forwarded)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if got := h.records.last(t, 1).ClientIP; got != tc.want {
				t.Errorf("client ip %q, want %q", got, tc.want)
			}
		})
	}
}
