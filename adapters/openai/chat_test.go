package openai

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
)

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile("../../internal/testkit/testdata/openai/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseChatRequestFixtures(t *testing.T) {
	tests := []struct {
		file string
		want ChatRequest
	}{
		{"chat_request.json", ChatRequest{Model: "gpt-4o-mini", MaxTokens: 64}},
		{"chat_stream_request.json", ChatRequest{Model: "gpt-4o-mini", Stream: true, IncludeUsage: true, MaxTokens: 64}},
		{"tool_call_request.json", ChatRequest{Model: "gpt-4o-mini", Tools: []string{"get_weather"}, ToolChoice: "auto"}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			req, err := ParseChatRequest(fixture(t, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			got := *req
			got.body, got.members, got.tools = nil, nil, nil
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("parsed %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseChatRequestFields(t *testing.T) {
	const msgs = `"messages":[{"role":"user","content":"hi"}]`
	tests := []struct {
		name string
		body string
		want ChatRequest
	}{
		{"minimal", `{"model":"m",` + msgs + `}`, ChatRequest{Model: "m"}},
		{"whitespace everywhere", " {\n \"model\" :\t\"m\" ,\n " + strings.Replace(msgs, ":", " : ", 1) + " ,\"stream\" : true } \n", ChatRequest{Model: "m", Stream: true}},
		{"escaped key", `{"mod\u0065l":"m",` + msgs + `}`, ChatRequest{Model: "m"}},
		{"escaped model", `{"model":"a\"b\u00e9",` + msgs + `}`, ChatRequest{Model: "a\"bé"}},
		{"stream null", `{"model":"m",` + msgs + `,"stream":null}`, ChatRequest{Model: "m"}},
		{"stream_options null", `{"model":"m",` + msgs + `,"stream":true,"stream_options":null}`, ChatRequest{Model: "m", Stream: true}},
		{"include_usage false", `{"model":"m",` + msgs + `,"stream":true,"stream_options":{"include_usage":false}}`, ChatRequest{Model: "m", Stream: true}},
		{"max_tokens", `{"model":"m",` + msgs + `,"max_tokens":10}`, ChatRequest{Model: "m", MaxTokens: 10}},
		{"max_completion_tokens wins after", `{"model":"m",` + msgs + `,"max_tokens":10,"max_completion_tokens":20}`, ChatRequest{Model: "m", MaxTokens: 20}},
		{"max_completion_tokens wins before", `{"model":"m",` + msgs + `,"max_completion_tokens":20,"max_tokens":10}`, ChatRequest{Model: "m", MaxTokens: 20}},
		{"null max_completion_tokens", `{"model":"m",` + msgs + `,"max_completion_tokens":null,"max_tokens":10}`, ChatRequest{Model: "m", MaxTokens: 10}},
		{"named tool choice", `{"model":"m",` + msgs + `,"tools":[{"type":"function","function":{"name":"a"}},{"type":"function","function":{"name":"b"}}],"tool_choice":{"type":"function","function":{"name":"b"}}}`,
			ChatRequest{Model: "m", Tools: []string{"a", "b"}, ToolChoice: "b", ToolChoiceNamed: true}},
		{"built-in tool named by its type", `{"model":"m",` + msgs + `,"tools":[{"type":"web_search"}],"tool_choice":"required"}`, ChatRequest{Model: "m", Tools: []string{"web_search"}, ToolChoice: "required"}},
		{"tools null", `{"model":"m",` + msgs + `,"tools":null}`, ChatRequest{Model: "m"}},
		{"odd tool_choice is ignored", `{"model":"m",` + msgs + `,"tool_choice":7}`, ChatRequest{Model: "m"}},
		{"unknown fields kept", `{"model":"m",` + msgs + `,"x_custom":{"a":[1,2]},"temperature":0.2}`, ChatRequest{Model: "m"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := ParseChatRequest([]byte(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			got := *req
			got.body, got.members, got.tools = nil, nil, nil
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("parsed %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseChatRequestErrors(t *testing.T) {
	const msgs = `"messages":[{"role":"user","content":"hi"}]`
	tests := []struct {
		name      string
		body      string
		wantParam string
		wantMsg   string
	}{
		{"empty body", ``, "", "not valid JSON"},
		{"malformed", `{"model":`, "model", "not valid JSON"},
		{"malformed value", `{"model":tru,` + msgs + `}`, "model", "not valid JSON"},
		{"unclosed object", `{"model":"m",` + msgs, "", "not valid JSON"},
		{"missing comma", `{"model":"m" ` + msgs + `}`, "", "not valid JSON"},
		{"array", `[{"model":"m"}]`, "", "must be a JSON object"},
		{"string", `"hello"`, "", "must be a JSON object"},
		{"null", `null`, "", "must be a JSON object"},
		{"trailing data", `{"model":"m",` + msgs + `} {}`, "", "data after the JSON object"},
		{"missing model", `{` + msgs + `}`, "model", "you must provide a 'model'"},
		{"empty model", `{"model":"",` + msgs + `}`, "model", "non-empty string"},
		{"null model", `{"model":null,` + msgs + `}`, "model", "non-empty string"},
		{"numeric model", `{"model":4,` + msgs + `}`, "model", "non-empty string"},
		{"missing messages", `{"model":"m"}`, "messages", "you must provide a 'messages'"},
		{"empty messages", `{"model":"m","messages":[]}`, "messages", "at least one"},
		{"empty messages with space", `{"model":"m","messages":[ ]}`, "messages", "at least one"},
		{"messages an object", `{"model":"m","messages":{"role":"user"}}`, "messages", "must be an array"},
		{"messages a string", `{"model":"m","messages":"hi"}`, "messages", "must be an array"},
		{"messages null", `{"model":"m","messages":null}`, "messages", "must be an array"},
		{"stream a string", `{"model":"m",` + msgs + `,"stream":"yes"}`, "stream", "true or false"},
		{"stream a number", `{"model":"m",` + msgs + `,"stream":1}`, "stream", "true or false"},
		{"stream_options a string", `{"model":"m",` + msgs + `,"stream_options":"usage"}`, "stream_options", "must be an object"},
		{"include_usage a string", `{"model":"m",` + msgs + `,"stream_options":{"include_usage":"yes"}}`, "stream_options", "must be an object"},
		{"max_tokens zero", `{"model":"m",` + msgs + `,"max_tokens":0}`, "max_tokens", "positive whole number"},
		{"max_tokens negative", `{"model":"m",` + msgs + `,"max_tokens":-5}`, "max_tokens", "positive whole number"},
		{"max_tokens fractional", `{"model":"m",` + msgs + `,"max_tokens":1.5}`, "max_tokens", "positive whole number"},
		{"max_completion_tokens a string", `{"model":"m",` + msgs + `,"max_completion_tokens":"64"}`, "max_completion_tokens", "positive whole number"},
		{"max_completion_tokens huge", `{"model":"m",` + msgs + `,"max_completion_tokens":99999999999999999999999}`, "max_completion_tokens", "positive whole number"},
		{"tools an object", `{"model":"m",` + msgs + `,"tools":{"name":"f"}}`, "tools", "must be an array"},
		{"tools of numbers", `{"model":"m",` + msgs + `,"tools":[1]}`, "tools", "must be an array"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := ParseChatRequest([]byte(tt.body))
			if err == nil {
				t.Fatalf("ParseChatRequest accepted %s: %+v", tt.body, req)
			}
			var re *RequestError
			if !errors.As(err, &re) {
				t.Fatalf("error is %T, want *RequestError", err)
			}
			if re.Param != tt.wantParam {
				t.Errorf("param = %q, want %q (message %q)", re.Param, tt.wantParam, re.Message)
			}
			if !strings.Contains(re.Message, tt.wantMsg) || err.Error() != re.Message {
				t.Errorf("message = %q, want it to contain %q", re.Message, tt.wantMsg)
			}
		})
	}
}

func TestEncode(t *testing.T) {
	const msgs = `"messages":[{"role":"user","content":"hi"}]`
	tests := []struct {
		name       string
		body       string
		model      string
		forceUsage bool
		want       string
	}{
		{
			name:  "model only",
			body:  `{"model":"small",` + msgs + `,"temperature":0.2}`,
			model: "gpt-4o-mini", forceUsage: true,
			want: `{"model":"gpt-4o-mini",` + msgs + `,"temperature":0.2}`,
		},
		{
			name:  "model not first, odd spacing kept",
			body:  "{ \"temperature\" : 1 ,\n  \"model\" :  \"small\" , " + msgs + " }",
			model: "big",
			want:  "{ \"temperature\" : 1 ,\n  \"model\" :  \"big\" , " + msgs + " }",
		},
		{
			name:  "model that needs escaping",
			body:  `{"model":"m",` + msgs + `}`,
			model: "a\"b\\c</script>",
			want:  `{"model":"a\"b\\c\u003c/script\u003e",` + msgs + `}`,
		},
		{
			name:  "stream gets include_usage",
			body:  `{"model":"m",` + msgs + `,"stream":true}`,
			model: "u", forceUsage: true,
			want: `{"model":"u",` + msgs + `,"stream":true,"stream_options":{"include_usage":true}}`,
		},
		{
			name:  "stream without force",
			body:  `{"model":"m",` + msgs + `,"stream":true}`,
			model: "u", forceUsage: false,
			want: `{"model":"u",` + msgs + `,"stream":true}`,
		},
		{
			name:  "not a stream",
			body:  `{"model":"m",` + msgs + `,"stream":false}`,
			model: "u", forceUsage: true,
			want: `{"model":"u",` + msgs + `,"stream":false}`,
		},
		{
			name:  "client already asked for usage",
			body:  `{"stream_options": {"include_usage": true}, "stream": true, "model": "m", ` + msgs + `}`,
			model: "u", forceUsage: true,
			want: `{"stream_options": {"include_usage": true}, "stream": true, "model": "u", ` + msgs + `}`,
		},
		{
			name:  "merged into other stream options",
			body:  `{"model":"m",` + msgs + `,"stream_options":{"include_obfuscation": false},"stream":true}`,
			model: "u", forceUsage: true,
			want: `{"model":"u",` + msgs + `,"stream_options":{"include_obfuscation": false,"include_usage":true},"stream":true}`,
		},
		{
			name:  "include_usage false turned on in place",
			body:  `{"model":"m",` + msgs + `,"stream_options":{"include_usage":false,"x":1},"stream":true}`,
			model: "u", forceUsage: true,
			want: `{"model":"u",` + msgs + `,"stream_options":{"include_usage":true,"x":1},"stream":true}`,
		},
		{
			name:  "empty stream options",
			body:  `{"model":"m",` + msgs + `,"stream_options":{ },"stream":true}`,
			model: "u", forceUsage: true,
			want: `{"model":"u",` + msgs + `,"stream_options":{ "include_usage":true},"stream":true}`,
		},
		{
			name:  "null stream options",
			body:  `{"model":"m",` + msgs + `,"stream_options":null,"stream":true}`,
			model: "u", forceUsage: true,
			want: `{"model":"u",` + msgs + `,"stream_options":{"include_usage":true},"stream":true}`,
		},
		{
			name:  "trailing whitespace kept",
			body:  "{\"model\":\"m\"," + msgs + ",\"stream\":true}\n",
			model: "u", forceUsage: true,
			want: "{\"model\":\"u\"," + msgs + ",\"stream\":true,\"stream_options\":{\"include_usage\":true}}\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := []byte(tt.body)
			req, err := ParseChatRequest(body)
			if err != nil {
				t.Fatal(err)
			}
			got, err := req.Encode(tt.model, tt.forceUsage)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("Encode =\n%s\nwant\n%s", got, tt.want)
			}
			if !json.Valid(got) {
				t.Errorf("Encode produced invalid JSON: %s", got)
			}
			if string(body) != tt.body {
				t.Errorf("Encode changed the client's body: %s", body)
			}
		})
	}
}

// On the reference requests, Encode changes the model's value and nothing
// else, byte for byte.
func TestEncodeFixtures(t *testing.T) {
	for _, file := range []string{"chat_request.json", "chat_stream_request.json", "tool_call_request.json"} {
		t.Run(file, func(t *testing.T) {
			body := fixture(t, file)
			req, err := ParseChatRequest(body)
			if err != nil {
				t.Fatal(err)
			}
			got, err := req.Encode("gpt-4o-mini-2024-07-18", true)
			if err != nil {
				t.Fatal(err)
			}
			want := bytes.Replace(body, []byte(`"model": "gpt-4o-mini"`), []byte(`"model": "gpt-4o-mini-2024-07-18"`), 1)
			if !bytes.Equal(got, want) {
				t.Errorf("Encode =\n%s\nwant\n%s", got, want)
			}
		})
	}

	// The streaming request with its include_usage removed gets it back,
	// and keeps every other byte.
	body := bytes.Replace(fixture(t, "chat_stream_request.json"), []byte(`{ "include_usage": true }`), []byte(`{ "include_obfuscation": false }`), 1)
	req, err := ParseChatRequest(body)
	if err != nil {
		t.Fatal(err)
	}
	got, err := req.Encode("m2", true)
	if err != nil {
		t.Fatal(err)
	}
	want := bytes.Replace(body, []byte(`"model": "gpt-4o-mini"`), []byte(`"model": "m2"`), 1)
	want = bytes.Replace(want, []byte(`{ "include_obfuscation": false }`), []byte(`{ "include_obfuscation": false ,"include_usage":true}`), 1)
	if !bytes.Equal(got, want) {
		t.Errorf("Encode =\n%s\nwant\n%s", got, want)
	}
}

func TestSetFields(t *testing.T) {
	tests := []struct {
		name string
		obj  string
		set  []field
		want string
	}{
		{"add to empty", `{}`, []field{{"a", []byte("1")}}, `{"a":1}`},
		{"add to empty with space", "{ \n}", []field{{"a", []byte("1")}}, "{ \n\"a\":1}"},
		{"add after members", `{"x":true}`, []field{{"a", []byte(`"v"`)}}, `{"x":true,"a":"v"}`},
		{"replace in place", `{"a":1,"b":2}`, []field{{"a", []byte("3")}}, `{"a":3,"b":2}`},
		{"replace and add", `{"a":1 , "b":[1,{"a":2}]}`, []field{{"b", []byte("null")}, {"c", []byte("{}")}, {"a", []byte(`"z"`)}}, `{"a":"z" , "b":null,"c":{}}`},
		{"nested key untouched", `{"o":{"a":1}}`, []field{{"a", []byte("2")}}, `{"o":{"a":1},"a":2}`},
		{"key that needs escaping", `{}`, []field{{`we"ird`, []byte("1")}}, `{"we\"ird":1}`},
		{"braces inside strings", `{"s":"}{"}`, []field{{"a", []byte("1")}}, `{"s":"}{","a":1}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := setFields([]byte(tt.obj), tt.set)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("setFields(%s) = %s, want %s", tt.obj, got, tt.want)
			}
			if !json.Valid(got) {
				t.Errorf("invalid JSON: %s", got)
			}
		})
	}
	for _, bad := range []string{``, `[]`, `{"a":}`, `{} x`} {
		if got, err := setFields([]byte(bad), []field{{"a", []byte("1")}}); err == nil {
			t.Errorf("setFields(%q) = %s, want an error", bad, got)
		}
	}
}
