package anthropic

import (
	"encoding/json"
	"errors"
	"testing"

	"portcullis/adapters"
)

func f64(v float64) *float64 { return &v }

func TestEncodeRequest(t *testing.T) {
	no := false
	for _, tc := range []struct {
		name    string
		req     adapters.Request
		want    string // a JSON object whose every member the encoding must hold
		refused string // the param of a RequestError
	}{
		{
			name: "system messages join into the top-level system; max_tokens defaults",
			req: adapters.Request{Messages: []adapters.Message{
				{Role: adapters.RoleSystem, Content: []adapters.Part{{Type: adapters.PartText, Text: "a"}}},
				{Role: adapters.RoleSystem, Content: []adapters.Part{{Type: adapters.PartText, Text: "b"}}},
				{Role: adapters.RoleUser, Content: []adapters.Part{{Type: adapters.PartText, Text: "hi"}}},
			}},
			want: `{"system":"a\n\nb","max_tokens":4096,"messages":[{"role":"user","content":"hi"}]}`,
		},
		{
			name: "consecutive tool results make one user turn, results first",
			req: adapters.Request{MaxTokens: 10, Messages: []adapters.Message{
				{Role: adapters.RoleAssistant, ToolCalls: []adapters.ToolCall{{ID: "c1", Name: "f", Arguments: `{"x":1}`}, {ID: "c2", Name: "g", Arguments: ""}}},
				{Role: adapters.RoleTool, ToolCallID: "c1", Content: []adapters.Part{{Type: adapters.PartText, Text: "r1"}}},
				{Role: adapters.RoleTool, ToolCallID: "c2", Content: []adapters.Part{{Type: adapters.PartText, Text: "r2"}}, IsError: true},
				{Role: adapters.RoleUser, Content: []adapters.Part{{Type: adapters.PartText, Text: "and?"}}},
			}},
			want: `{"messages":[{"role":"assistant","content":[{"type":"tool_use","id":"c1","name":"f","input":{"x":1}},{"type":"tool_use","id":"c2","name":"g","input":{}}]},` +
				`{"role":"user","content":[{"type":"tool_result","tool_use_id":"c1","content":[{"type":"text","text":"r1"}]},{"type":"tool_result","tool_use_id":"c2","content":[{"type":"text","text":"r2"}],"is_error":true},{"type":"text","text":"and?"}]}]}`,
		},
		{
			name: "temperature is clamped to 1, stop becomes stop_sequences, user becomes metadata",
			req: adapters.Request{Temperature: f64(1.7), Stop: []string{"x"}, User: "u1",
				Messages: []adapters.Message{{Role: adapters.RoleUser, Content: []adapters.Part{{Type: adapters.PartText, Text: "hi"}}}}},
			want: `{"temperature":1,"stop_sequences":["x"],"metadata":{"user_id":"u1"}}`,
		},
		{
			name: "images: data inline, URLs by reference",
			req: adapters.Request{Messages: []adapters.Message{{Role: adapters.RoleUser, Content: []adapters.Part{
				{Type: adapters.PartImage, Image: &adapters.Image{MediaType: "image/png", Data: "AAAA"}},
				{Type: adapters.PartImage, Image: &adapters.Image{URL: "https://example.com/a.png"}},
			}}}},
			want: `{"messages":[{"role":"user","content":[{"type":"image","source":{"type":"base64","media_type":"image/png","data":"AAAA"}},{"type":"image","source":{"type":"url","url":"https://example.com/a.png"}}]}]}`,
		},
		{
			name: "tools and a forced tool without parallel calls",
			req: adapters.Request{
				Messages:          []adapters.Message{{Role: adapters.RoleUser, Content: []adapters.Part{{Type: adapters.PartText, Text: "hi"}}}},
				Tools:             []adapters.Tool{{Name: "f", Description: "d", Parameters: json.RawMessage(`{"type":"object"}`)}},
				ToolChoice:        adapters.ToolChoice{Mode: adapters.ToolChoiceTool, Name: "f"},
				ParallelToolCalls: &no,
			},
			want: `{"tools":[{"name":"f","description":"d","input_schema":{"type":"object"}}],"tool_choice":{"type":"tool","name":"f","disable_parallel_tool_use":true}}`,
		},
		{
			name: "required is any",
			req: adapters.Request{
				Messages:   []adapters.Message{{Role: adapters.RoleUser, Content: []adapters.Part{{Type: adapters.PartText, Text: "hi"}}}},
				Tools:      []adapters.Tool{{Name: "f"}},
				ToolChoice: adapters.ToolChoice{Mode: adapters.ToolChoiceRequired},
			},
			want: `{"tool_choice":{"type":"any"},"tools":[{"name":"f","input_schema":{"type":"object","properties":{}}}]}`,
		},
		{
			name:    "several choices are refused",
			req:     adapters.Request{N: 2, Messages: []adapters.Message{{Role: adapters.RoleUser, Content: []adapters.Part{{Type: adapters.PartText, Text: "hi"}}}}},
			refused: "n",
		},
		{
			name: "JSON mode without a schema is refused",
			req: adapters.Request{ResponseFormat: &adapters.ResponseFormat{Type: "json_object"},
				Messages: []adapters.Message{{Role: adapters.RoleUser, Content: []adapters.Part{{Type: adapters.PartText, Text: "hi"}}}}},
			refused: "response_format",
		},
		{
			name: "a JSON schema becomes output_config",
			req: adapters.Request{ResponseFormat: &adapters.ResponseFormat{Type: "json_schema", Schema: json.RawMessage(`{"type":"object"}`)},
				Messages: []adapters.Message{{Role: adapters.RoleUser, Content: []adapters.Part{{Type: adapters.PartText, Text: "hi"}}}}},
			want: `{"output_config":{"format":{"type":"json_schema","schema":{"type":"object"}}}}`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := EncodeRequest(&tc.req, "claude-x")
			if tc.refused != "" {
				var re *adapters.RequestError
				if !errors.As(err, &re) || re.Param != tc.refused {
					t.Fatalf("error %v, want a RequestError on %s", err, tc.refused)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got, want map[string]json.RawMessage
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal([]byte(tc.want), &want); err != nil {
				t.Fatal(err)
			}
			for k, v := range want {
				if !jsonEqual(t, got[k], v) {
					t.Errorf("%s = %s, want %s", k, got[k], v)
				}
			}
			if string(got["model"]) != `"claude-x"` {
				t.Errorf("model = %s", got["model"])
			}
		})
	}
}

func jsonEqual(t *testing.T, a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	ja, _ := json.Marshal(x)
	jb, _ := json.Marshal(y)
	return string(ja) == string(jb)
}

func TestStopReasons(t *testing.T) {
	for stop, want := range map[string]adapters.FinishReason{
		"end_turn": "stop", "stop_sequence": "stop", "pause_turn": "stop", "max_tokens": "length",
		"model_context_window_exceeded": "length", "tool_use": "tool_calls", "refusal": "content_filter",
	} {
		if got := FinishReason(stop); got != want {
			t.Errorf("FinishReason(%s) = %s, want %s", stop, got, want)
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	for _, tc := range []struct {
		status    int
		fixture   string
		kind      adapters.ErrorKind
		retryable bool
	}{
		{429, "error_429.json", adapters.ErrRateLimit, true},
		{529, "error_529_overloaded.json", adapters.ErrOverloaded, true},
		{400, "error_400_context_length.json", adapters.ErrContextLength, false},
		{401, "error_401.json", adapters.ErrAuth, false},
	} {
		body := fixtures(t, tc.fixture)[0]
		e := DecodeError(tc.status, headers{"retry-after": "7"}, body)
		if e.Kind != tc.kind || e.Retryable != tc.retryable || e.Message == "" || e.RetryAfter.Seconds() != 7 {
			t.Errorf("%s: %+v", tc.fixture, e)
		}
	}
}

type headers map[string]string

func (h headers) Get(k string) string { return h[k] }
