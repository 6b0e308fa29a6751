package bedrock

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

// Any bytes read as an event stream keep the promises of testkit.JoinStream.
func FuzzStreamDecoder(f *testing.F) {
	for _, name := range []string{"chat_stream.eventstream.txt", "tool_call_stream.eventstream.txt"} {
		b := stream(name)
		f.Add(b)
		f.Add(b[:len(b)/2])
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		testkit.JoinStream(t, NewStreamDecoder(bytes.NewReader(in)), 100000)
	})
}

// Any response body decodes without panicking, its tool calls carry JSON
// object arguments that the gateway can send back; any error is classified.
func FuzzResponseTranslation(f *testing.F) {
	for _, name := range []string{"chat_response.json", "tool_call_response.json", "error_429.json", "error_400_validation.json"} {
		f.Add(fixture(name), 429, "ThrottlingException:x")
	}
	f.Fuzz(func(t *testing.T, body []byte, status int, errType string) {
		if e := DecodeError(status, http.Header{"X-Amzn-Errortype": {errType}}, body); e.Kind == "" {
			t.Fatalf("unclassified error %+v", e)
		}
		resp, err := DecodeResponse(body)
		if err != nil {
			return
		}
		req := &adapters.Request{Messages: []adapters.Message{{Role: adapters.RoleUser, Content: []adapters.Part{{Type: adapters.PartText, Text: "q"}}},
			{Role: adapters.RoleAssistant, Content: []adapters.Part{{Type: adapters.PartText, Text: resp.Text}}, ToolCalls: resp.ToolCalls}}}
		for _, c := range resp.ToolCalls {
			if !json.Valid([]byte(c.Arguments)) {
				t.Fatalf("arguments %q are not JSON", c.Arguments)
			}
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
	testkit.FuzzEncoder(f, unified, EncodeRequest, `{"model":"m","messages":[{"role":"assistant","content":"a"},{"role":"assistant","content":"b"},{"role":"tool","tool_call_id":"x","content":"{}"}],"temperature":1.5,"top_k":3}`)
}

// unified reads an OpenAI chat request into the unified request.
func unified(body []byte) (*adapters.Request, error) {
	parsed, err := openai.ParseChatRequest(body)
	if err != nil {
		return nil, err
	}
	return parsed.Unified()
}
