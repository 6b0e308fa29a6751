package cohere

import (
	"bytes"
	"errors"
	"net/http"
	"testing"

	"portcullis/adapters"
	"portcullis/adapters/openai"
	"portcullis/internal/testkit"
)

// Any bytes read as a stream keep the promises of testkit.JoinStream.
func FuzzStreamDecoder(f *testing.F) {
	for _, name := range []string{"chat_stream.sse", "tool_call_stream.sse"} {
		b := fixture(name)
		f.Add(b)
		f.Add(bytes.ReplaceAll(b, []byte("\n"), []byte("\r\n")))
		f.Add(b[:len(b)/2])
	}
	f.Fuzz(func(t *testing.T, stream []byte) {
		testkit.JoinStream(t, NewStreamDecoder(bytes.NewReader(stream)), 100000)
	})
}

// Any response body decodes without panicking, its tool calls carry JSON
// arguments the gateway can send back; any error body is classified.
func FuzzResponseTranslation(f *testing.F) {
	for _, name := range []string{"chat_response.json", "tool_call_response.json", "error_429.json", "error_401.json"} {
		f.Add(fixture(name), 400)
	}
	f.Fuzz(func(t *testing.T, body []byte, status int) {
		if e := DecodeError(status, http.Header{}, body); e.Kind == "" {
			t.Fatalf("unclassified error %+v", e)
		}
		resp, err := DecodeResponse(body)
		if err != nil {
			return
		}
		req := &adapters.Request{Messages: []adapters.Message{{Role: adapters.RoleAssistant, Content: []adapters.Part{{Type: adapters.PartText, Text: resp.Text}}, ToolCalls: resp.ToolCalls}}}
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
	testkit.FuzzEncoder(f, unified, EncodeRequest, `{"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}}]}],"tools":[{"type":"function","function":{"name":"a"}}],"tool_choice":{"type":"function","function":{"name":"b"}}}`)
}

// unified reads an OpenAI chat request into the unified request.
func unified(body []byte) (*adapters.Request, error) {
	parsed, err := openai.ParseChatRequest(body)
	if err != nil {
		return nil, err
	}
	return parsed.Unified()
}
