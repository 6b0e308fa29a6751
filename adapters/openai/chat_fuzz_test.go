package openai

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzParseChatRequest feeds arbitrary bodies to ParseChatRequest. It must
// not panic; when it accepts a body, Encode must give valid JSON whose model
// is the new one, and which keeps every other top-level field as it was,
// adding at most stream_options with include_usage on.
func FuzzParseChatRequest(f *testing.F) {
	for _, name := range []string{"chat_request.json", "chat_stream_request.json", "tool_call_request.json"} {
		f.Add(fixture(f, name), "gpt-4o-mini-2024-07-18")
	}
	const msgs = `"messages":[{"role":"user","content":"hi"}]`
	for _, s := range []string{
		`{"model":"m",` + msgs + `,"stream":true}`,
		`{"model":"m",` + msgs + `,"stream":true,"stream_options":{"include_obfuscation":false}}`,
		`{"model":"m",` + msgs + `,"stream":true,"stream_options":null}`,
		`{"model":"m",` + msgs + `,"stream":true,"stream_options":{}}`,
		`{ "stream" : true , "model" : "m" , ` + msgs + ` , "max_tokens" : 3 }`,
		`{"model":"m","model":"n",` + msgs + `,"stream_options":{"include_usage":false},"stream":true}`,
		`{"mod\u0065l":"m",` + msgs + `,"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":{"function":{"name":"f"}}}`,
		`{"model":"m",` + msgs + `} `,
		`[]`,
		`{"model":`,
	} {
		f.Add([]byte(s), "u")
	}
	f.Fuzz(func(t *testing.T, body []byte, upstream string) {
		orig := bytes.Clone(body)
		req, err := ParseChatRequest(body)
		if err != nil {
			if _, ok := err.(*RequestError); !ok {
				t.Fatalf("error is %T, want *RequestError", err)
			}
			return
		}
		if req.Model == "" {
			t.Fatal("accepted a request without a model")
		}
		out, err := req.Encode(upstream, true)
		if err != nil {
			t.Fatalf("Encode: %v", err)
		}
		if !bytes.Equal(body, orig) {
			t.Fatal("Encode changed the client's body")
		}
		if !json.Valid(out) {
			t.Fatalf("Encode produced invalid JSON:\n%s\nfrom\n%s", out, body)
		}
		var before, after map[string]json.RawMessage
		if err := json.Unmarshal(body, &before); err != nil {
			t.Fatalf("accepted body does not decode: %v", err)
		}
		if err := json.Unmarshal(out, &after); err != nil {
			t.Fatalf("encoded body does not decode: %v", err)
		}
		// The model is sent as JSON encodes it: invalid UTF-8 becomes U+FFFD.
		var model, want string
		enc, _ := json.Marshal(upstream)
		_ = json.Unmarshal(enc, &want)
		if err := json.Unmarshal(after["model"], &model); err != nil || model != want {
			t.Fatalf("model = %s, want %q", after["model"], upstream)
		}
		forced := req.Stream && !req.IncludeUsage
		for k, v := range before {
			if k == "model" || (k == "stream_options" && forced) {
				continue
			}
			if !bytes.Equal(after[k], v) {
				t.Fatalf("field %q changed from %s to %s", k, v, after[k])
			}
		}
		for k := range after {
			if _, ok := before[k]; !ok && !(k == "stream_options" && forced) {
				t.Fatalf("Encode added field %q", k)
			}
		}
		if forced {
			var so struct {
				IncludeUsage *bool `json:"include_usage"`
			}
			if err := json.Unmarshal(after["stream_options"], &so); err != nil || so.IncludeUsage == nil || !*so.IncludeUsage {
				t.Fatalf("stream_options = %s, want include_usage true", after["stream_options"])
			}
		}

		// Without forcing, only the model changes.
		plain, err := req.Encode(upstream, false)
		if err != nil {
			t.Fatal(err)
		}
		var p map[string]json.RawMessage
		if err := json.Unmarshal(plain, &p); err != nil || len(p) != len(before) {
			t.Fatalf("Encode without forcing changed the fields: %s", plain)
		}
	})
}
