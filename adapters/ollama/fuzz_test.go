package ollama

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"testing"

	"portcullis/adapters"
	"portcullis/adapters/openai"
	"portcullis/internal/testkit"
)

// Any bytes read as an NDJSON stream keep the promises of testkit.JoinStream.
func FuzzStreamDecoder(f *testing.F) {
	for _, name := range []string{"chat_stream.ndjson", "tool_call_stream.ndjson"} {
		b := fixture(name)
		f.Add(b)
		f.Add(bytes.ReplaceAll(b, []byte("\n"), []byte("\r\n")))
		f.Add(b[:len(b)/2])
	}
	f.Add([]byte(`{"error":"boom"}` + "\n"))
	f.Fuzz(func(t *testing.T, stream []byte) {
		testkit.JoinStream(t, NewStreamDecoder(bytes.NewReader(stream)), 100000)
	})
}

// Any answer body decodes without panicking, its tool calls carry JSON
// object arguments that the gateway can send back in the next turn; any
// error body is classified.
func FuzzResponseTranslation(f *testing.F) {
	for _, name := range []string{"chat_response.json", "tool_call_response.json", "error_404_model.json"} {
		f.Add(fixture(name), 404)
	}
	f.Fuzz(func(t *testing.T, body []byte, status int) {
		if e := DecodeError(status, http.Header{}, body); e.Kind == "" {
			t.Fatalf("unclassified error %+v", e)
		}
		resp, err := DecodeResponse(body)
		if err != nil {
			return
		}
		req := &adapters.Request{Messages: []adapters.Message{{Role: adapters.RoleAssistant, ToolCalls: resp.ToolCalls}}}
		for _, c := range resp.ToolCalls {
			if !json.Valid([]byte(c.Arguments)) {
				t.Fatalf("arguments %q are not JSON", c.Arguments)
			}
			req.Messages = append(req.Messages, adapters.Message{Role: adapters.RoleTool, ToolCallID: c.ID})
		}
		if _, err := EncodeRequest(req, "m"); err != nil {
			var re *adapters.RequestError
			if !errors.As(err, &re) {
				t.Fatalf("EncodeRequest error %T %v", err, err)
			}
		}
	})
}

// Any chat request the gateway accepts either translates into valid JSON
// or is refused with a RequestError.
func FuzzRequestTranslation(f *testing.F) {
	testkit.FuzzEncoder(f, unified, EncodeRequest, `{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}}]}],"response_format":{"type":"json_object"},"reasoning_effort":"low"}`)
}

// unified reads an OpenAI chat request into the unified request.
func unified(body []byte) (*adapters.Request, error) {
	parsed, err := openai.ParseChatRequest(body)
	if err != nil {
		return nil, err
	}
	return parsed.Unified()
}
