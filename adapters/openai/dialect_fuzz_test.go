package openai

import (
	"encoding/json"
	"errors"
	"testing"

	"portcullis/adapters"
)

var dialects = []Dialect{DialectOpenAI, DialectAzure, DialectVLLM, DialectGroq, DialectMistral, DialectPerplexity, DialectOllama}

// A chat request encodes for every dialect as a request the gateway reads
// again, or is refused with a RequestError; Mistral's tool-call ids are
// always 9 letters and digits, and the dialects that read only max_tokens
// never get max_completion_tokens.
func FuzzEncodeRequestForDialects(f *testing.F) {
	for _, b := range wireFixtures(f, "*request.json") {
		f.Add(b)
	}
	f.Add([]byte(`{"model":"m","messages":[{"role":"assistant","tool_calls":[{"id":"call_1","type":"function","function":{"name":"f","arguments":"{}"}}]},{"role":"tool","tool_call_id":"call_1","content":"r"}],"seed":1,"n":2,"max_completion_tokens":9}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, d := range dialects {
			req, err := DecodeRequest(body)
			if err != nil {
				return
			}
			out, err := EncodeRequestFor(req, "m2", d)
			if err != nil {
				var re *adapters.RequestError
				if !errors.As(err, &re) {
					t.Fatalf("%s: EncodeRequestFor error %T %v", d, err, err)
				}
				continue
			}
			back, err := DecodeRequest(out)
			if err != nil {
				t.Fatalf("%s: the gateway cannot read its own encoding %s: %v", d, out, err)
			}
			var fields map[string]json.RawMessage
			_ = json.Unmarshal(out, &fields)
			if _, ok := fields["max_completion_tokens"]; ok && d.maxTokensField() == "max_tokens" {
				t.Fatalf("%s got max_completion_tokens: %s", d, out)
			}
			if _, ok := fields["stream_options"]; ok && !d.asksForUsage() {
				t.Fatalf("%s got stream_options: %s", d, out)
			}
			if d != DialectMistral {
				continue
			}
			for _, m := range back.Messages {
				for _, c := range m.ToolCalls {
					if c.ID != "" && !mistralID(c.ID) {
						t.Fatalf("Mistral got tool-call id %q", c.ID)
					}
				}
				if m.ToolCallID != "" && !mistralID(m.ToolCallID) {
					t.Fatalf("Mistral got tool result id %q", m.ToolCallID)
				}
			}
		}
	})
}

// Any embeddings body is read or refused with a RequestError; a body
// read is forwarded as valid JSON naming the upstream model, its input
// unchanged.
func FuzzParseEmbeddingsRequest(f *testing.F) {
	for _, b := range wireFixtures(f, "embeddings_request.json") {
		f.Add(b)
	}
	f.Add([]byte(`{"model":"m","input":"x","input":[1,2]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := ParseEmbeddingsRequest(body)
		if err != nil {
			var re *RequestError
			if !errors.As(err, &re) {
				t.Fatalf("error %T", err)
			}
			return
		}
		out, err := req.Encode("m2", false)
		if err != nil {
			t.Fatal(err)
		}
		var in, sent struct {
			Model string          `json:"model"`
			Input json.RawMessage `json:"input"`
		}
		if json.Unmarshal(body, &in) != nil || json.Unmarshal(out, &sent) != nil || sent.Model != "m2" || string(sent.Input) != string(in.Input) {
			t.Fatalf("forwarded %s for %s", out, body)
		}
	})
}
