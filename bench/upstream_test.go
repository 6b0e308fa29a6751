package main

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestUpstream(t *testing.T) {
	u, err := NewUpstream(0)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(u)
	defer srv.Close()

	tests := []struct {
		name       string
		method     string
		path       string
		body       string
		wantStatus int
		wantType   string
		check      func(t *testing.T, body []byte)
	}{
		{
			name: "non-streamed", method: "POST", path: "/v1/chat/completions", body: string(chatRequestBody),
			wantStatus: 200, wantType: "application/json",
			check: func(t *testing.T, body []byte) {
				if !bytes.Equal(body, chatResponse) {
					t.Errorf("body is not wire/chat_response.json:\n%s", body)
				}
			},
		},
		{
			name: "streamed with usage", method: "POST", path: "/v1/chat/completions", body: string(chatStreamRequestBody),
			wantStatus: 200, wantType: "text/event-stream; charset=utf-8",
			check: func(t *testing.T, body []byte) {
				if !bytes.Equal(body, chatStream) {
					t.Errorf("stream is not wire/chat_stream.sse:\n%s", body)
				}
			},
		},
		{
			name: "streamed without usage", method: "POST", path: "/v1/chat/completions",
			body:       `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"stream":true}`,
			wantStatus: 200, wantType: "text/event-stream; charset=utf-8",
			check: func(t *testing.T, body []byte) {
				if bytes.Contains(body, []byte(`"choices":[]`)) {
					t.Error("the usage chunk was sent though the request did not ask for it")
				}
				if !bytes.HasSuffix(body, streamEnd) {
					t.Errorf("stream does not end with data: [DONE]:\n%s", body)
				}
				if got, want := bytes.Count(body, []byte("data: ")), bytes.Count(chatStream, []byte("data: "))-1; got != want {
					t.Errorf("%d events, want %d", got, want)
				}
			},
		},
		{name: "bad JSON", method: "POST", path: "/v1/chat/completions", body: "{", wantStatus: 400, wantType: "application/json"},
		{name: "unknown path", method: "POST", path: "/v1/embeddings", body: "{}", wantStatus: 404, wantType: "application/json"},
		{name: "wrong method", method: "GET", path: "/v1/chat/completions", wantStatus: 405, wantType: "application/json"},
		{name: "health", method: "GET", path: "/healthz", wantStatus: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, srv.URL+tt.path, strings.NewReader(tt.body))
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tt.wantStatus, body)
			}
			if tt.wantType != "" && resp.Header.Get("Content-Type") != tt.wantType {
				t.Errorf("Content-Type %q, want %q", resp.Header.Get("Content-Type"), tt.wantType)
			}
			if tt.check != nil {
				tt.check(t, body)
			}
		})
	}
}
