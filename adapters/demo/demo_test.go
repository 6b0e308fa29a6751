package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"portcullis/adapters"
	"portcullis/adapters/openai"
)

var stamp = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("../../internal/testkit/testdata/openai/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// client reaches a demo Handler through the in-process Transport, the way
// the gateway does. returned is closed when the handler's ServeHTTP returns.
func client(t *testing.T, wordDelay time.Duration) (c *http.Client, returned <-chan struct{}) {
	t.Helper()
	h := &Handler{WordDelay: wordDelay, Now: func() time.Time { return stamp }}
	done := make(chan struct{}, 100)
	wrapped := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() { done <- struct{}{} }()
		h.ServeHTTP(w, r)
	})
	return &http.Client{Transport: &Transport{Handler: wrapped}}, done
}

func post(t *testing.T, ctx context.Context, c *http.Client, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://demo.invalid/v1/chat/completions", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

func chatBody(model, prompt string, extra string) string {
	b, _ := json.Marshal(prompt)
	return `{"model":"` + model + `","messages":[{"role":"user","content":` + string(b) + `}]` + extra + `}`
}

// waitReturned fails the test if the handler has not returned within a
// generous bound.
func waitReturned(t *testing.T, returned <-chan struct{}) {
	t.Helper()
	select {
	case <-returned:
	case <-time.After(10 * time.Second):
		t.Fatal("the handler is still running")
	}
}

type wireCompletion struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	Model   string `json:"model"`
	Choices []struct {
		Index   int `json:"index"`
		Message struct {
			Role    string `json:"role"`
			Content string `json:"content"`
		} `json:"message"`
		Delta        map[string]any `json:"delta"`
		FinishReason *string        `json:"finish_reason"`
	} `json:"choices"`
	Usage *struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
		TotalTokens      int `json:"total_tokens"`
	} `json:"usage"`
}

// keys returns the sorted keys of a JSON object, and of its first choice,
// message and usage objects, as "path.key" strings.
func keys(t *testing.T, b []byte, skip ...string) []string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("not a JSON object: %s", b)
	}
	var out []string
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		for k, v := range m {
			if contains(skip, k) {
				continue
			}
			out = append(out, prefix+k)
			switch v := v.(type) {
			case map[string]any:
				if k != "delta" {
					walk(prefix+k+".", v)
				}
			case []any:
				if len(v) > 0 {
					if o, ok := v[0].(map[string]any); ok && k == "choices" {
						walk(prefix+k+"[].", o)
					}
				}
			}
		}
	}
	walk("", m)
	sort.Strings(out)
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestChatCompletion(t *testing.T) {
	c, returned := client(t, 0)
	resp := post(t, context.Background(), c, string(fixture(t, "chat_request.json")))
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	waitReturned(t, returned)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("response %d %q: %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}

	// The same fields as OpenAI's reference response, at every level.
	if got, want := keys(t, body), keys(t, fixture(t, "chat_response.json")); !reflect.DeepEqual(got, want) {
		t.Errorf("fields = %v\nwant     %v", got, want)
	}

	var cc wireCompletion
	if err := json.Unmarshal(body, &cc); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(cc.ID, "chatcmpl-") || cc.Object != "chat.completion" || cc.Created != stamp.Unix() || cc.Model != "gpt-4o-mini" {
		t.Errorf("envelope = %s %s %d %s", cc.ID, cc.Object, cc.Created, cc.Model)
	}
	if len(cc.Choices) != 1 {
		t.Fatalf("%d choices", len(cc.Choices))
	}
	ch := cc.Choices[0]
	if ch.Index != 0 || ch.Message.Role != "assistant" || ch.FinishReason == nil || *ch.FinishReason != "stop" {
		t.Errorf("choice = %+v", ch)
	}
	if !strings.Contains(ch.Message.Content, `You said: "Name the three primary colors."`) {
		t.Errorf("content %q does not echo the last user message (a text part)", ch.Message.Content)
	}
	// Prompt: 3 + (4 + 11 tokens of the developer message) + (4 + 6 of the user's).
	u := cc.Usage
	if u == nil || u.PromptTokens != 28 || u.CompletionTokens != len(strings.Fields(ch.Message.Content)) || u.TotalTokens != u.PromptTokens+u.CompletionTokens {
		t.Errorf("usage = %+v for content %q", u, ch.Message.Content)
	}
	s := openai.ReadSummary(body)
	if s.Usage == nil || s.Usage.PromptTokens != 28 || s.Model != "gpt-4o-mini" || s.Error != nil {
		t.Errorf("the gateway reads %+v", s)
	}

	// The answer is deterministic.
	resp2 := post(t, context.Background(), c, string(fixture(t, "chat_request.json")))
	body2, _ := io.ReadAll(resp2.Body)
	resp2.Body.Close()
	if !bytes.Equal(body, body2) {
		t.Errorf("two answers differ:\n%s\n%s", body, body2)
	}
}

// streamEvents reads a whole stream, checking its framing.
func streamEvents(t *testing.T, r io.Reader) []string {
	t.Helper()
	er := adapters.NewEventReader(r)
	var data []string
	for {
		ev, err := er.Next()
		if errors.Is(err, io.EOF) {
			return data
		}
		if err != nil {
			t.Fatalf("stream broke: %v", err)
		}
		if !bytes.HasPrefix(ev.Raw, []byte("data: ")) || !bytes.HasSuffix(ev.Raw, []byte("\n\n")) || len(ev.Name) != 0 {
			t.Fatalf("event %q is not framed as `data: ...\\n\\n`", ev.Raw)
		}
		data = append(data, string(ev.Data))
	}
}

func TestChatStream(t *testing.T) {
	tests := []struct {
		name      string
		body      string
		wantUsage bool
	}{
		{"with include_usage", chatBody("demo", "Name the three primary colors.", `,"stream":true,"stream_options":{"include_usage":true}`), true},
		{"without stream_options", chatBody("demo", "Name the three primary colors.", `,"stream":true`), false},
		{"include_usage false", chatBody("demo", "Name the three primary colors.", `,"stream":true,"stream_options":{"include_usage":false}`), false},
	}
	c, returned := client(t, 0)
	resp := post(t, context.Background(), c, chatBody("demo", "Name the three primary colors.", ""))
	whole, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	waitReturned(t, returned)
	var answer wireCompletion
	json.Unmarshal(whole, &answer)
	wantText := answer.Choices[0].Message.Content
	wantWords := strings.Fields(wantText)

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := post(t, context.Background(), c, tt.body)
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
				t.Fatalf("response %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
			}
			data := streamEvents(t, resp.Body)
			waitReturned(t, returned)

			if data[len(data)-1] != "[DONE]" {
				t.Fatalf("stream ends with %q, want [DONE]", data[len(data)-1])
			}
			chunks := data[:len(data)-1]
			var parsed []wireCompletion
			for _, d := range chunks {
				var cc wireCompletion
				if err := json.Unmarshal([]byte(d), &cc); err != nil {
					t.Fatalf("chunk %q: %v", d, err)
				}
				if cc.Object != "chat.completion.chunk" || cc.ID != answer.ID || cc.Model != "demo" {
					t.Errorf("chunk envelope %s %s %s, want id %s", cc.ID, cc.Object, cc.Model, answer.ID)
				}
				parsed = append(parsed, cc)
			}
			// The reference chunks' fields, bar OpenAI's random padding.
			ref := bytes.TrimPrefix(bytes.SplitN(fixture(t, "chat_stream.sse"), []byte("\n"), 2)[0], []byte("data: "))
			if got, want := keys(t, []byte(chunks[0])), keys(t, ref, "obfuscation"); !reflect.DeepEqual(got, want) {
				t.Errorf("chunk fields = %v\nwant %v", got, want)
			}

			// Role chunk, one chunk per word, finish chunk, then usage if asked.
			if role := parsed[0].Choices[0].Delta["role"]; role != "assistant" {
				t.Errorf("first delta = %v, want the assistant role", parsed[0].Choices[0].Delta)
			}
			n := len(wantWords)
			var text strings.Builder
			for i, cc := range parsed[1 : 1+n] {
				content, _ := cc.Choices[0].Delta["content"].(string)
				if strings.TrimSpace(content) != wantWords[i] || cc.Choices[0].FinishReason != nil || cc.Usage != nil {
					t.Errorf("chunk %d = %+v, want the word %q", i+1, cc.Choices[0], wantWords[i])
				}
				text.WriteString(content)
			}
			if text.String() != wantText {
				t.Errorf("streamed text %q, want the non-streamed answer %q", text.String(), wantText)
			}
			fin := parsed[1+n]
			if len(fin.Choices) != 1 || len(fin.Choices[0].Delta) != 0 || fin.Choices[0].FinishReason == nil || *fin.Choices[0].FinishReason != "stop" {
				t.Errorf("finish chunk = %s", chunks[1+n])
			}
			rest := parsed[2+n:]
			if !tt.wantUsage {
				if len(rest) != 0 {
					t.Errorf("%d chunks after the finish chunk without include_usage", len(rest))
				}
				for i, d := range chunks {
					if openai.ClassifyChunk([]byte(d)).HasUsage {
						t.Errorf("chunk %d carries usage: %s", i, d)
					}
				}
				return
			}
			if len(rest) != 1 {
				t.Fatalf("%d chunks after the finish chunk, want the usage chunk", len(rest))
			}
			u := rest[0].Usage
			if len(rest[0].Choices) != 0 || u == nil || u.CompletionTokens != n || u.PromptTokens != answer.Usage.PromptTokens || u.TotalTokens != u.PromptTokens+u.CompletionTokens {
				t.Errorf("usage chunk = %s", chunks[2+n])
			}
			if cls := openai.ClassifyChunk([]byte(chunks[2+n])); !cls.UsageOnly {
				t.Errorf("the gateway does not see the usage chunk as usage-only: %+v", cls)
			}
		})
	}
}

func TestMaxTokensTruncates(t *testing.T) {
	c, returned := client(t, 0)
	for _, field := range []string{"max_completion_tokens", "max_tokens"} {
		t.Run(field, func(t *testing.T) {
			resp := post(t, context.Background(), c, chatBody("demo", "hi", `,"`+field+`":3`))
			var cc wireCompletion
			json.NewDecoder(resp.Body).Decode(&cc)
			resp.Body.Close()
			waitReturned(t, returned)
			ch := cc.Choices[0]
			if len(strings.Fields(ch.Message.Content)) != 3 || *ch.FinishReason != "length" || cc.Usage.CompletionTokens != 3 {
				t.Errorf("truncated answer = %q, finish %q, usage %+v", ch.Message.Content, *ch.FinishReason, cc.Usage)
			}
		})
	}

	// A limit the answer fits in changes nothing.
	resp := post(t, context.Background(), c, chatBody("demo", "hi", `,"max_completion_tokens":1000`))
	var cc wireCompletion
	json.NewDecoder(resp.Body).Decode(&cc)
	resp.Body.Close()
	waitReturned(t, returned)
	if *cc.Choices[0].FinishReason != "stop" {
		t.Errorf("finish = %q under a large limit", *cc.Choices[0].FinishReason)
	}

	// Streamed: three words, then a finish chunk saying length.
	resp = post(t, context.Background(), c, chatBody("demo", "hi", `,"max_completion_tokens":3,"stream":true,"stream_options":{"include_usage":true}`))
	data := streamEvents(t, resp.Body)
	resp.Body.Close()
	waitReturned(t, returned)
	// role, 3 words, finish, usage, [DONE]
	if len(data) != 7 || !strings.Contains(data[4], `"finish_reason":"length"`) || !strings.Contains(data[5], `"completion_tokens":3`) {
		t.Errorf("truncated stream = %q", data)
	}
}

func TestFailureModes(t *testing.T) {
	tests := []struct {
		name       string
		body       string
		wantStatus int
		wantType   string
		wantCode   any // nil for a null code
		wantHeader map[string]string
	}{
		{"400", chatBody("demo-error-400", "hi", ""), 400, "invalid_request_error", "context_length_exceeded", nil},
		{"401", chatBody("demo-error-401", "hi", ""), 401, "invalid_request_error", "invalid_api_key", nil},
		{"403", chatBody("demo-error-403", "hi", ""), 403, "permission_denied", "unsupported_country_region_territory", nil},
		{"404", chatBody("demo-error-404", "hi", ""), 404, "invalid_request_error", "model_not_found", nil},
		{"429", chatBody("demo-error-429", "hi", ""), 429, "requests", "rate_limit_exceeded",
			map[string]string{"Retry-After": "1", "X-Ratelimit-Remaining-Requests": "0", "X-Ratelimit-Limit-Requests": "500"}},
		{"500", chatBody("demo-error-500", "hi", ""), 500, "server_error", nil, nil},
		{"502", chatBody("demo-error-502", "hi", ""), 502, "server_error", nil, nil},
		{"503", chatBody("demo-error-503", "hi", ""), 503, "server_error", nil, nil},
		{"other status is a 500", chatBody("demo-error-418", "hi", ""), 500, "server_error", nil, nil},
		{"429 on a stream request", chatBody("demo-error-429", "hi", `,"stream":true`), 429, "requests", "rate_limit_exceeded", map[string]string{"Retry-After": "1"}},
		{"magic prompt", chatBody("demo", "please [demo:error=429] now", ""), 429, "requests", "rate_limit_exceeded", map[string]string{"Retry-After": "1"}},
		{"magic prompt 503", chatBody("demo", "[demo:error=503]", `,"stream":true`), 503, "server_error", nil, nil},
		{"midstream without a stream", chatBody("demo-error-midstream", "hi", ""), 500, "server_error", nil, nil},
		{"bad JSON", `{"model":`, 400, "invalid_request_error", "invalid_json", nil},
	}
	c, returned := client(t, 0)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := post(t, context.Background(), c, tt.body)
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			waitReturned(t, returned)
			if resp.StatusCode != tt.wantStatus || resp.Header.Get("Content-Type") != "application/json" {
				t.Fatalf("response %d %q: %s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
			}
			var e struct {
				Error map[string]any `json:"error"`
			}
			if err := json.Unmarshal(body, &e); err != nil {
				t.Fatalf("error body %s: %v", body, err)
			}
			// OpenAI always sends all four keys; param and code may be null.
			for _, k := range []string{"message", "type", "param", "code"} {
				if _, ok := e.Error[k]; !ok {
					t.Errorf("error body lacks %q: %s", k, body)
				}
			}
			if msg, _ := e.Error["message"].(string); msg == "" {
				t.Errorf("empty message: %s", body)
			}
			if e.Error["type"] != tt.wantType || e.Error["code"] != tt.wantCode {
				t.Errorf("type %v code %v, want %v %v", e.Error["type"], e.Error["code"], tt.wantType, tt.wantCode)
			}
			for k, v := range tt.wantHeader {
				if got := resp.Header.Get(k); got != v {
					t.Errorf("header %s = %q, want %q", k, got, v)
				}
			}
			if tt.wantHeader == nil && resp.Header.Get("Retry-After") != "" {
				t.Errorf("Retry-After on a %d", resp.StatusCode)
			}
			s := openai.ReadSummary(body)
			if s.Error == nil || s.Error.Type != tt.wantType {
				t.Errorf("the gateway reads %+v", s)
			}
		})
	}
}

func TestMidstreamError(t *testing.T) {
	for _, body := range []string{
		chatBody("demo-error-midstream", "hi", `,"stream":true,"stream_options":{"include_usage":true}`),
		chatBody("demo", "go [demo:error=midstream]", `,"stream":true`),
	} {
		c, returned := client(t, 0)
		resp := post(t, context.Background(), c, body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d, want 200: the error comes inside the stream", resp.StatusCode)
		}
		data := streamEvents(t, resp.Body)
		resp.Body.Close()
		waitReturned(t, returned)
		last := data[len(data)-1]
		if !openai.ClassifyChunk([]byte(last)).IsError || openai.ReadSummary([]byte(last)).Error.Type != "server_error" {
			t.Errorf("last event %q is not an error object", last)
		}
		// Role chunk and three words came first; no [DONE], no usage.
		if len(data) != 5 {
			t.Errorf("got %d events, want role + 3 words + error: %q", len(data), data)
		}
		for _, d := range data {
			if d == "[DONE]" || openai.ClassifyChunk([]byte(d)).HasUsage {
				t.Errorf("a cut stream sent %q", d)
			}
		}
	}
}

func TestHangUntilCancelled(t *testing.T) {
	for _, body := range []string{
		chatBody("demo-hang", "hi", `,"stream":true`),
		chatBody("demo", "wait [demo:hang]", `,"stream":true`),
	} {
		c, returned := client(t, 0)
		ctx, cancel := context.WithCancel(context.Background())
		resp := post(t, ctx, c, body)
		er := adapters.NewEventReader(resp.Body)
		for i := range 2 { // the role chunk and the first word
			if _, err := er.Next(); err != nil {
				t.Fatalf("event %d: %v", i, err)
			}
		}
		next := make(chan error, 1)
		go func() {
			_, err := er.Next()
			next <- err
		}()
		select {
		case err := <-next:
			t.Fatalf("the hanging stream went on: %v", err)
		case <-returned:
			t.Fatal("the handler returned before the caller went away")
		case <-time.After(100 * time.Millisecond):
		}
		cancel()
		waitReturned(t, returned)
		if err := <-next; !errors.Is(err, context.Canceled) {
			t.Errorf("read after cancel = %v, want context.Canceled", err)
		}
		resp.Body.Close()
	}
}

func TestModelsAndUnknownPaths(t *testing.T) {
	c, _ := client(t, 0)
	resp, err := c.Get("http://demo.invalid/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var list struct {
		Object string `json:"object"`
		Data   []struct {
			ID      string `json:"id"`
			Object  string `json:"object"`
			Created int64  `json:"created"`
			OwnedBy string `json:"owned_by"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &list); err != nil || resp.StatusCode != 200 || list.Object != "list" ||
		len(list.Data) != 1 || list.Data[0].ID != "demo" || list.Data[0].Object != "model" || list.Data[0].Created != stamp.Unix() {
		t.Errorf("models = %d %s", resp.StatusCode, body)
	}

	for _, target := range []string{"/v1/completions", "/v1/chat/completions/x"} {
		resp, err := c.Post("http://demo.invalid"+target, "application/json", strings.NewReader(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 404 || !strings.Contains(string(body), `"code":"unknown_url"`) {
			t.Errorf("POST %s = %d %s", target, resp.StatusCode, body)
		}
	}
}
