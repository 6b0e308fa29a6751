package openai

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"portcullis/adapters"
)

func dialectFixture(t *testing.T, folder, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "internal", "testkit", "testdata", folder, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestToolCallID(t *testing.T) {
	for _, tt := range []struct {
		d    Dialect
		id   string
		same bool
	}{
		{DialectMistral, "Xq7Lm2Pz9", true},
		{DialectMistral, "call_Kp2Lq3Mr4Ns5Ot6Pu7Qv8Rw", false},
		{DialectMistral, "toolu_01A09q90qw90lq917835lq9", false},
		{DialectMistral, "Xq7Lm2Pz_", false},
		{DialectMistral, "Xq7Lm2Pz9a", false},
		{DialectOpenAI, "toolu_01A09q90qw90lq917835lq9", true},
		{DialectGroq, "call_h3k9w2m7q4", true},
	} {
		got := tt.d.toolCallID(tt.id)
		if (got == tt.id) != tt.same || (tt.d == DialectMistral && !mistralID(got)) {
			t.Errorf("%s.toolCallID(%q) = %q", tt.d, tt.id, got)
		}
		if again := tt.d.toolCallID(tt.id); again != got {
			t.Errorf("%s.toolCallID(%q) is %q, then %q", tt.d, tt.id, got, again)
		}
	}
	if DialectMistral.toolCallID("call_a") == DialectMistral.toolCallID("call_b") {
		t.Error("two ids map to one")
	}
}

func TestEncodeRequestForDialects(t *testing.T) {
	const body = `{"model":"m","messages":[{"role":"developer","content":"Be terse."},{"role":"user","content":"hi"}],"max_completion_tokens":64,"seed":7,"user":"u1","logprobs":true,"top_logprobs":2,"stream":true}`
	const tools = `,"tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object"}}}]`
	for _, tt := range []struct {
		name    string
		d       Dialect
		extra   string
		want    map[string]any // field → value; nil value: absent
		refused string         // the param of the refusal
		dropped []string
	}{
		{name: "openai", d: DialectOpenAI, want: map[string]any{"max_completion_tokens": 64.0, "max_tokens": nil, "seed": 7.0, "user": "u1", "stream_options": map[string]any{"include_usage": true}}},
		{name: "mistral", d: DialectMistral, want: map[string]any{"max_tokens": 64.0, "max_completion_tokens": nil, "seed": nil, "random_seed": 7.0, "user": nil, "logprobs": nil, "top_logprobs": nil, "stream_options": nil},
			dropped: []string{"logprobs", "user"}},
		{name: "perplexity", d: DialectPerplexity, want: map[string]any{"max_tokens": 64.0, "seed": nil, "random_seed": nil, "user": nil, "stream_options": nil},
			dropped: []string{"logprobs", "seed", "user"}},
		{name: "perplexity refuses tools", d: DialectPerplexity, extra: tools, refused: "tools"},
		{name: "perplexity refuses n > 1", d: DialectPerplexity, extra: `,"n":2`, refused: "n"},
		{name: "groq refuses n > 1", d: DialectGroq, extra: `,"n":3`, refused: "n"},
		{name: "groq", d: DialectGroq, extra: tools, want: map[string]any{"max_completion_tokens": 64.0, "seed": 7.0, "stream_options": map[string]any{"include_usage": true}}},
		{name: "ollama", d: DialectOllama, extra: tools, want: map[string]any{"max_tokens": 64.0, "max_completion_tokens": nil, "seed": 7.0, "stream_options": map[string]any{"include_usage": true}}},
		{name: "ollama keeps tool_choice none by not offering the tools", d: DialectOllama, extra: tools + `,"tool_choice":"none"`, want: map[string]any{"tools": nil, "tool_choice": nil}},
		{name: "ollama refuses a forced tool call", d: DialectOllama, extra: tools + `,"tool_choice":"required"`, refused: "tool_choice"},
		{name: "ollama refuses a named tool call", d: DialectOllama, extra: tools + `,"tool_choice":{"type":"function","function":{"name":"get_weather"}}`, refused: "tool_choice"},
		{name: "azure is openai's", d: DialectAzure, want: map[string]any{"max_completion_tokens": 64.0, "seed": 7.0}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req, err := DecodeRequest([]byte(body[:len(body)-1] + tt.extra + "}"))
			if err != nil {
				t.Fatal(err)
			}
			out, err := EncodeRequestFor(req, "up", tt.d)
			if tt.refused != "" {
				var re *adapters.RequestError
				if !errors.As(err, &re) || re.Param != tt.refused || !strings.Contains(re.Message, string(tt.d)) {
					t.Fatalf("err = %v, want a refusal of %s naming the provider", err, tt.refused)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got map[string]any
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatal(err)
			}
			for k, v := range tt.want {
				if b, _ := json.Marshal(got[k]); string(b) != mustJSON(v) {
					t.Errorf("%s = %s, want %s in %s", k, b, mustJSON(v), out)
				}
			}
			if got["messages"].([]any)[0].(map[string]any)["role"] != "system" {
				t.Errorf("developer message sent as %v", got["messages"])
			}
			for _, f := range tt.dropped {
				if !strings.Contains(strings.Join(req.Dropped, ","), f) {
					t.Errorf("dropped %v, want %s among them", req.Dropped, f)
				}
			}
		})
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestDecodeErrorShapes(t *testing.T) {
	for _, tt := range []struct {
		name       string
		status     int
		header     http.Header
		body       []byte
		kind       adapters.ErrorKind
		errType    string
		message    string
		retryAfter time.Duration
	}{
		{"azure 429 with a code of digits", 429, http.Header{"Retry-After-Ms": {"6000"}}, dialectFixture(t, "azure-openai", "error_429.json"), adapters.ErrRateLimit, "", "Requests to the ChatCompletions_Create", 6 * time.Second},
		{"azure content filter", 400, nil, dialectFixture(t, "azure-openai", "error_400_content_filter.json"), adapters.ErrInvalidRequest, "", "content management policy", 0},
		{"azure 401", 401, nil, dialectFixture(t, "azure-openai", "error_401.json"), adapters.ErrAuth, "", "Access denied", 0},
		{"azure unknown deployment", 404, nil, dialectFixture(t, "azure-openai", "error_404_deployment.json"), adapters.ErrNotFound, "", "API deployment", 0},
		{"groq 429", 429, http.Header{"Retry-After": {"5"}}, dialectFixture(t, "groq", "error_429.json"), adapters.ErrRateLimit, "tokens", "Rate limit reached", 5 * time.Second},
		{"groq 413 over the TPM limit", 413, nil, dialectFixture(t, "groq", "error_413_request_too_large.json"), adapters.ErrTooLarge, "tokens", "Request too large", 0},
		{"groq context length", 400, nil, []byte(`{"error":{"message":"Please reduce the length of the messages or completion.","type":"invalid_request_error"}}`), adapters.ErrContextLength, "invalid_request_error", "Please reduce", 0},
		{"groq 498 at capacity", 498, nil, []byte(`{"error":{"message":"capacity exceeded","type":"capacity_exceeded"}}`), adapters.ErrOverloaded, "capacity_exceeded", "capacity", 0},
		{"mistral 429", 429, nil, dialectFixture(t, "mistral", "error_429.json"), adapters.ErrRateLimit, "rate_limited", "Rate limit exceeded", 0},
		{"mistral 429, the old shape", 429, nil, dialectFixture(t, "mistral", "error_429_legacy.json"), adapters.ErrRateLimit, "", "Requests rate limit exceeded", 0},
		{"mistral 422", 422, nil, dialectFixture(t, "mistral", "error_422_validation.json"), adapters.ErrInvalidRequest, "invalid_request_error", "body.messages: Field required", 0},
		{"mistral context length", 400, nil, []byte(`{"object":"error","message":"too large for model with 131072 maximum context length","type":"invalid_request_message_error","param":null,"code":"3051"}`), adapters.ErrContextLength, "invalid_request_message_error", "maximum context length", 0},
		{"mistral 503 capacity", 503, nil, []byte(`{"message":"Service tier capacity exceeded for this model."}`), adapters.ErrOverloaded, "", "capacity", 0},
		{"perplexity 429 with a numeric code", 429, nil, dialectFixture(t, "perplexity", "error_429.json"), adapters.ErrRateLimit, "rate_limit_exceeded", "Rate limit exceeded", 0},
		{"perplexity 401 as HTML", 401, nil, []byte("<html><head><title>401 Authorization Required</title></head></html>"), adapters.ErrAuth, "", "", 0},
		{"ollama 404", 404, nil, dialectFixture(t, "ollama-openai", "error_404_model.json"), adapters.ErrNotFound, "not_found_error", `model "llama9" not found`, 0},
		{"ollama cloud 429, native shape", 429, nil, []byte(`{"error":"rate limited"}`), adapters.ErrRateLimit, "", "rate limited", 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := tt.header
			if h == nil {
				h = http.Header{}
			}
			e := DecodeError(tt.status, h, tt.body)
			if e.Kind != tt.kind || e.Type != tt.errType || !strings.Contains(e.Message, tt.message) || (tt.message == "" && e.Message != "") || e.RetryAfter != tt.retryAfter {
				t.Errorf("got %+v", e)
			}
		})
	}
	if e := DecodeError(400, http.Header{}, dialectFixture(t, "perplexity", "error_400.json")); e.Code != "400" {
		t.Errorf("perplexity's numeric code read as %q", e.Code)
	}
}

// Each dialect's stream fixtures decode into the text, tool call, finish
// reason and usage of its non-streamed answer, and end cleanly, with
// [DONE] or, for Perplexity, without.
func TestStreamDecoderDialects(t *testing.T) {
	for _, tt := range []struct {
		folder, prefix string
	}{
		{"azure-openai", "chat"}, {"azure-openai", "tool_call"},
		{"groq", "chat"}, {"groq", "tool_call"},
		{"mistral", "chat"}, {"mistral", "tool_call"},
		{"perplexity", "chat"},
		{"ollama-openai", "chat"}, {"ollama-openai", "tool_call"},
	} {
		t.Run(tt.folder+"/"+tt.prefix, func(t *testing.T) {
			want, err := DecodeResponse(dialectFixture(t, tt.folder, tt.prefix+"_response.json"))
			if err != nil {
				t.Fatal(err)
			}
			d := NewStreamDecoder(bytes.NewReader(dialectFixture(t, tt.folder, tt.prefix+"_stream.sse")))
			var text, args strings.Builder
			var got adapters.Response
			for {
				ev, err := d.Next()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				switch ev.Type {
				case adapters.EventStart:
					if ev.ID == "" || got.ID != "" {
						t.Errorf("start %+v after %q", ev, got.ID)
					}
					got.ID = ev.ID
				case adapters.EventText:
					text.WriteString(ev.Text)
				case adapters.EventToolCall:
					got.ToolCalls = append(got.ToolCalls, adapters.ToolCall{ID: ev.ToolCallID, Name: ev.ToolName})
					args.WriteString(ev.Arguments)
				case adapters.EventToolArgs:
					args.WriteString(ev.Arguments)
				case adapters.EventFinish:
					got.Finish = ev.Finish
				case adapters.EventUsage:
					got.Usage = *ev.Usage
				}
			}
			if text.String() != want.Text || got.Finish != want.Finish {
				t.Errorf("text %q finish %q, want %q %q", text.String(), got.Finish, want.Text, want.Finish)
			}
			if len(want.ToolCalls) > 0 {
				if len(got.ToolCalls) != 1 || got.ToolCalls[0].Name != want.ToolCalls[0].Name || got.ToolCalls[0].ID != want.ToolCalls[0].ID {
					t.Errorf("tool calls %+v, want %+v", got.ToolCalls, want.ToolCalls)
				}
				var a, b map[string]any
				if json.Unmarshal([]byte(args.String()), &a) != nil || json.Unmarshal([]byte(want.ToolCalls[0].Arguments), &b) != nil || mustJSON(a) != mustJSON(b) {
					t.Errorf("arguments %q, want %q", args.String(), want.ToolCalls[0].Arguments)
				}
			}
			// Azure's tool call fixture was streamed without include_usage,
			// so it has no usage chunk; every other fixture reports usage.
			if got.Usage.PromptTokens != want.Usage.PromptTokens && !(tt.folder == "azure-openai" && tt.prefix == "tool_call") {
				t.Errorf("usage %+v, want %+v", got.Usage, want.Usage)
			}
		})
	}
}

// Perplexity's citations and search results survive translation: in the
// chat completion, and on the finish chunk of a stream.
func TestPerplexityCitationsCarried(t *testing.T) {
	resp, err := DecodeResponse(dialectFixture(t, "perplexity", "chat_response.json"))
	if err != nil {
		t.Fatal(err)
	}
	out := EncodeResponse(resp, "sonar")
	var answer struct {
		Citations     []string         `json:"citations"`
		SearchResults []map[string]any `json:"search_results"`
	}
	if err := json.Unmarshal(out, &answer); err != nil || len(answer.Citations) != 2 || len(answer.SearchResults) != 2 || answer.SearchResults[0]["title"] != "Saturn Moons - NASA Science" {
		t.Errorf("answer %s", out)
	}

	d := NewStreamDecoder(bytes.NewReader(dialectFixture(t, "perplexity", "chat_stream.sse")))
	e := NewStreamEncoder("sonar", false)
	var stream bytes.Buffer
	for {
		ev, err := d.Next()
		if err != nil {
			break
		}
		stream.Write(e.Encode(ev))
	}
	stream.Write(e.End())
	for _, ev := range bytes.Split(stream.Bytes(), []byte("\n\n")) {
		data, _ := bytes.CutPrefix(ev, []byte("data: "))
		isFinish := bytes.Contains(data, []byte(`"finish_reason":"stop"`))
		hasCitations := bytes.Contains(data, []byte(`"citations":["https://science.nasa.gov/saturn/moons/","https://science.nasa.gov/jupiter/moons/"]`))
		if isFinish != hasCitations || (len(data) > 0 && string(data) != "[DONE]" && !json.Valid(data)) {
			t.Errorf("chunk %s", data)
		}
	}
	if !bytes.HasSuffix(stream.Bytes(), []byte("data: [DONE]\n\n")) {
		t.Errorf("stream %s", stream.Bytes())
	}
}

func TestMistralFinishReasons(t *testing.T) {
	for in, want := range map[string]adapters.FinishReason{"model_length": "length", "error": "stop", "tool_calls": "tool_calls", "stop": "stop"} {
		resp, err := DecodeResponse([]byte(`{"id":"x","choices":[{"message":{"content":"a"},"finish_reason":"` + in + `"}]}`))
		if err != nil || resp.Finish != want {
			t.Errorf("%s → %q, want %q", in, resp.Finish, want)
		}
	}
}

// Groq's and Ollama's reasoning field is read as reasoning_content is.
func TestReasoningField(t *testing.T) {
	resp, err := DecodeResponse([]byte(`{"id":"x","choices":[{"message":{"content":"a","reasoning":"because"},"finish_reason":"stop"}]}`))
	if err != nil || resp.Reasoning != "because" {
		t.Errorf("response reasoning %q (%v)", resp.Reasoning, err)
	}
	d := NewStreamDecoder(strings.NewReader("data: {\"id\":\"x\",\"choices\":[{\"delta\":{\"reasoning\":\"hmm\"},\"finish_reason\":null}]}\n\ndata: [DONE]\n\n"))
	var got string
	for {
		ev, err := d.Next()
		if err != nil {
			break
		}
		if ev.Type == adapters.EventReasoning {
			got += ev.Text
		}
	}
	if got != "hmm" {
		t.Errorf("stream reasoning %q", got)
	}
}
