package anthropic

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"portcullis/adapters"
)

// fixtures returns the wire fixtures whose names match pattern.
func fixtures(t testing.TB, pattern string) [][]byte {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("..", "..", "internal", "testkit", "testdata", "anthropic", pattern))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no fixtures %s: %v", pattern, err)
	}
	var out [][]byte
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

// The stream reader takes any bytes: it never panics, ends with io.EOF or
// an error, numbers tool calls from 0 without gaps, and only sends
// argument fragments for a call it began.
func FuzzStreamDecoder(f *testing.F) {
	for _, b := range fixtures(f, "*.sse") {
		f.Add(b)
		f.Add(bytes.ReplaceAll(b, []byte("\n"), []byte("\r\n")))
		f.Add(b[:len(b)/2])
	}
	f.Fuzz(func(t *testing.T, stream []byte) {
		d := NewStreamDecoder(bytes.NewReader(stream))
		begun := 0
		for range 100000 {
			ev, err := d.Next()
			if err != nil {
				if errors.Is(err, io.EOF) {
					if _, err := d.Next(); !errors.Is(err, io.EOF) {
						t.Fatalf("Next after EOF = %v", err)
					}
				}
				return
			}
			switch ev.Type {
			case adapters.EventToolCall:
				if ev.ToolIndex != begun {
					t.Fatalf("tool call %d, want %d", ev.ToolIndex, begun)
				}
				begun++
			case adapters.EventToolArgs:
				if ev.ToolIndex >= begun {
					t.Fatalf("arguments for tool %d, only %d begun", ev.ToolIndex, begun)
				}
			case adapters.EventUsage:
				if ev.Usage == nil {
					t.Fatal("usage event without usage")
				}
			case adapters.EventError:
				if ev.Err == nil {
					t.Fatal("error event without error")
				}
			}
		}
		t.Fatal("the stream never ended")
	})
}

// A Messages request the gateway accepts translates into a request it can
// read back, and its passthrough edits keep it valid JSON with the new model.
func FuzzRequestTranslation(f *testing.F) {
	for _, b := range fixtures(f, "*request.json") {
		f.Add(b, 100)
	}
	f.Add([]byte(`{"model":"m","max_tokens":5,"system":[{"type":"text","text":"s"}],"messages":[{"role":"user","content":[{"type":"tool_result","tool_use_id":"t","content":"r"},{"type":"text","text":"more"}]}]}`), 2)
	f.Fuzz(func(t *testing.T, body []byte, limit int) {
		// Token counting reads the same body but needs no max_tokens: it
		// accepts whatever the Messages API does.
		counted, countErr := ParseCountTokensRequest(body)
		req, err := ParseMessagesRequest(body)
		if err != nil {
			if countErr == nil {
				if out := counted.Encode("upstream-model"); !json.Valid(out) {
					t.Fatalf("count_tokens body %s", out)
				}
			}
			return
		}
		if countErr != nil {
			t.Fatalf("a Messages request refused for token counting: %v", countErr)
		}
		req.StripTools(func(name string) bool { return !strings.HasPrefix(name, "get") })
		req.CapMaxTokens(limit)
		out := req.Encode("upstream-model")
		var m struct {
			Model string `json:"model"`
		}
		if err := json.Unmarshal(out, &m); err != nil || m.Model != "upstream-model" {
			t.Fatalf("passthrough body %s: %v (model %q)", out, err, m.Model)
		}
		u, err := req.Unified()
		if err != nil {
			return
		}
		enc, err := EncodeRequest(u, "m2")
		if err != nil {
			var re *adapters.RequestError
			if !errors.As(err, &re) {
				t.Fatalf("EncodeRequest error %T %v", err, err)
			}
			return
		}
		if !json.Valid(enc) {
			t.Fatalf("EncodeRequest wrote invalid JSON: %s", enc)
		}
		if _, err := DecodeRequest(enc); err != nil {
			t.Fatalf("the gateway cannot read its own translation %s: %v", enc, err)
		}
	})
}

// Any response body decodes without panicking, and re-encodes as JSON.
func FuzzResponseTranslation(f *testing.F) {
	for _, b := range fixtures(f, "*response.json") {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		resp, err := DecodeResponse(body)
		if err != nil {
			return
		}
		if out := EncodeResponse(resp, "m"); !json.Valid(out) {
			t.Fatalf("invalid JSON: %s", out)
		}
		if e := DecodeError(429, nil, body); e.Kind != adapters.ErrRateLimit {
			t.Fatalf("a 429 decoded as %s", e.Kind)
		}
	})
}

// Whatever events arrive, the stream written for an Anthropic client is
// well-formed SSE with JSON data, its text joins to the text sent, and it
// is read back by the gateway's own decoder to the same text.
func FuzzStreamEncoder(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5}, "Red, yellow", `{"a":1}`)
	f.Add([]byte{1, 3, 4, 3, 4, 1, 5, 6}, "x", "{")
	f.Fuzz(func(t *testing.T, ops []byte, text, args string) {
		if !utf8.ValidString(text) {
			return // JSON carries text, not bytes: invalid UTF-8 becomes U+FFFD
		}
		e := NewStreamEncoder("m")
		var out bytes.Buffer
		var sent strings.Builder
		tools := 0
		for _, op := range ops {
			var ev adapters.StreamEvent
			switch op % 7 {
			case 0:
				ev = adapters.StreamEvent{Type: adapters.EventStart, ID: "id", Model: "m"}
			case 1:
				ev = adapters.StreamEvent{Type: adapters.EventText, Text: text}
				sent.WriteString(text)
			case 2:
				ev = adapters.StreamEvent{Type: adapters.EventReasoning, Text: text}
			case 3:
				ev = adapters.StreamEvent{Type: adapters.EventToolCall, ToolIndex: tools, ToolCallID: "c", ToolName: "f"}
				tools++
			case 4:
				ev = adapters.StreamEvent{Type: adapters.EventToolArgs, ToolIndex: tools - 1, Arguments: args}
			case 5:
				ev = adapters.StreamEvent{Type: adapters.EventFinish, Finish: adapters.FinishStop}
			case 6:
				ev = adapters.StreamEvent{Type: adapters.EventUsage, Usage: &adapters.Usage{PromptTokens: 3, CompletionTokens: 4}}
			}
			out.Write(e.Encode(ev))
		}
		out.Write(e.End())
		d := NewStreamDecoder(&out)
		var got strings.Builder
		for {
			ev, err := d.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("the encoded stream does not read back: %v\n%s", err, out.Bytes())
			}
			if ev.Type == adapters.EventText {
				got.WriteString(ev.Text)
			}
		}
		if got.String() != sent.String() {
			t.Fatalf("text %q came back as %q", sent.String(), got.String())
		}
	})
}
