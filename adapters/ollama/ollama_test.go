package ollama

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"portcullis/adapters"
	"portcullis/internal/testkit"
)

func fixture(name string) []byte { return testkit.ProviderFixture("ollama", name) }

// Whole answers and NDJSON streams of the same scenario say the same
// thing; tool arguments, objects on the wire, become JSON text.
func TestResponseAndStreamAgree(t *testing.T) {
	for _, tc := range []struct {
		name   string
		text   string
		calls  []adapters.ToolCall
		finish adapters.FinishReason
		usage  adapters.Usage
	}{
		{"chat", "Red, yellow, and blue.", nil, adapters.FinishStop, adapters.Usage{PromptTokens: 38, CompletionTokens: 8, TotalTokens: 46}},
		{"tool_call", "", []adapters.ToolCall{{ID: "call_k3m9x2qa", Name: "get_weather", Arguments: `{"location":"Paris, France","unit":"celsius"}`}},
			adapters.FinishToolCalls, adapters.Usage{PromptTokens: 169, CompletionTokens: 24, TotalTokens: 193}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := DecodeResponse(fixture(tc.name + "_response.json"))
			if err != nil {
				t.Fatal(err)
			}
			if resp.Text != tc.text || resp.Finish != tc.finish || resp.Usage != tc.usage || resp.Model != "llama3.2" || resp.ID == "" || resp.Created == 0 {
				t.Errorf("response %+v", resp)
			}
			if len(tc.calls) > 0 && !reflect.DeepEqual(resp.ToolCalls, tc.calls) {
				t.Errorf("calls %+v, want %+v", resp.ToolCalls, tc.calls)
			}
			j := testkit.JoinStream(t, NewStreamDecoder(bytes.NewReader(fixture(tc.name+"_stream.ndjson"))), 100)
			if !errors.Is(j.End, io.EOF) || j.Text != resp.Text || j.Finish != resp.Finish || j.Usage == nil || *j.Usage != resp.Usage || j.Model != "llama3.2" {
				t.Errorf("stream joined to %+v (usage %+v), want %+v", j, j.Usage, resp)
			}
			if len(tc.calls) > 0 && !reflect.DeepEqual(j.ToolCalls, tc.calls) {
				t.Errorf("stream calls %+v, want %+v", j.ToolCalls, tc.calls)
			}
		})
	}
}

func TestAnswersWithoutCountsOrIds(t *testing.T) {
	resp, err := DecodeResponse([]byte(`{"model":"m","message":{"role":"assistant","content":"","thinking":"hmm","tool_calls":[{"function":{"name":"f","arguments":{"a":[1, 2]}}}]},"done":true,"done_reason":"stop","eval_count":3}`))
	if err != nil {
		t.Fatal(err)
	}
	// A prompt served from the cache has no prompt_eval_count: 0.
	if resp.Usage != (adapters.Usage{CompletionTokens: 3, TotalTokens: 3}) || resp.Reasoning != "hmm" {
		t.Errorf("response %+v", resp)
	}
	if len(resp.ToolCalls) != 1 || !strings.HasPrefix(resp.ToolCalls[0].ID, "call_") || resp.ToolCalls[0].Arguments != `{"a":[1,2]}` {
		t.Errorf("calls %+v", resp.ToolCalls)
	}
	if r, _ := DecodeResponse([]byte(`{"message":{"content":"a"},"done":true,"done_reason":"length"}`)); r.Finish != adapters.FinishLength {
		t.Errorf("finish %q", r.Finish)
	}
}

func TestStreamEnds(t *testing.T) {
	for _, tc := range []struct {
		name, stream string
		end          error
		errKind      adapters.ErrorKind
	}{
		{"done line without a newline", `{"message":{"content":"a"},"done":false}` + "\n" + `{"done":true,"done_reason":"stop"}`, io.EOF, ""},
		{"cut before done", `{"message":{"content":"a"},"done":false}` + "\n", io.ErrUnexpectedEOF, ""},
		{"an error line", `{"message":{"content":"a"},"done":false}` + "\n" + `{"error":"model runner has unexpectedly stopped"}` + "\n", io.EOF, adapters.ErrServer},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := testkit.JoinStream(t, NewStreamDecoder(strings.NewReader(tc.stream)), 20)
			if !errors.Is(j.End, tc.end) || (tc.errKind != "") != (j.Err != nil) || j.Err != nil && j.Err.Kind != tc.errKind {
				t.Errorf("end %v err %+v", j.End, j.Err)
			}
		})
	}
}

func TestErrors(t *testing.T) {
	for _, tc := range []struct {
		status    int
		body      []byte
		kind      adapters.ErrorKind
		retryable bool
	}{
		{404, fixture("error_404_model.json"), adapters.ErrNotFound, false},
		{400, []byte(`{"error":"request (351 tokens) exceeds the available context size (256 tokens), try increasing it"}`), adapters.ErrContextLength, false},
		{401, []byte(`{"error":"unauthorized"}`), adapters.ErrAuth, false},
		{429, []byte(`{"error":"too many requests"}`), adapters.ErrRateLimit, true},
		{500, []byte(`{"error":"llama runner process has terminated"}`), adapters.ErrServer, true},
	} {
		e := DecodeError(tc.status, http.Header{}, tc.body)
		if e.Kind != tc.kind || e.Retryable != tc.retryable || e.Message == "" {
			t.Errorf("%d %s: decoded %+v", tc.status, tc.body, e)
		}
	}
}

// The wire reference's requests are what the gateway writes for the same
// unified requests.
func TestEncodeRequest(t *testing.T) {
	schema := json.RawMessage(`{"type":"object","properties":{"location":{"type":"string","description":"City and country, e.g. Paris, France"},"unit":{"type":"string","enum":["celsius","fahrenheit"]}},"required":["location","unit"]}`)
	temp, topP, topK, seed := 0.2, 0.9, 40, int64(42)
	text := func(s string) []adapters.Part { return []adapters.Part{{Type: adapters.PartText, Text: s}} }
	call := adapters.ToolCall{ID: "call_k3m9x2qa", Name: "get_weather", Arguments: `{"location":"Paris, France","unit":"celsius"}`}
	for _, tc := range []struct {
		fixture string
		req     adapters.Request
		ignore  []string
	}{
		{"chat_request.json", adapters.Request{
			Messages: []adapters.Message{
				{Role: adapters.RoleSystem, Content: text("You are a terse assistant. Answer in one sentence.")},
				{Role: adapters.RoleUser, Content: text("Name the three primary colors.")},
			},
			Temperature: &temp, TopP: &topP, TopK: &topK, MaxTokens: 64, Stop: []string{"\n\n"}, Seed: &seed,
		}, []string{"format", "keep_alive", "num_ctx"}},
		{"tool_call_request.json", adapters.Request{
			Messages: []adapters.Message{{Role: adapters.RoleUser, Content: text("What is the weather in Paris right now?")}},
			Tools:    []adapters.Tool{{Name: "get_weather", Description: "Get the current weather for a city.", Parameters: schema}},
		}, nil},
		{"tool_result_request.json", adapters.Request{
			Messages: []adapters.Message{
				{Role: adapters.RoleUser, Content: text("What is the weather in Paris right now?")},
				{Role: adapters.RoleAssistant, ToolCalls: []adapters.ToolCall{call}},
				{Role: adapters.RoleTool, ToolCallID: call.ID, Content: text(`{"temperature":18,"condition":"cloudy"}`)},
			},
		}, nil},
	} {
		t.Run(tc.fixture, func(t *testing.T) {
			body, err := EncodeRequest(&tc.req, "llama3.2")
			if err != nil {
				t.Fatal(err)
			}
			var got, want map[string]any
			_ = json.Unmarshal(body, &got)
			_ = json.Unmarshal(fixture(tc.fixture), &want)
			for _, k := range tc.ignore { // what the fixture sets and OpenAI has no word for
				delete(want, k)
				if o, ok := want["options"].(map[string]any); ok {
					delete(o, k)
				}
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("request\n%s\nwant %s's", body, tc.fixture)
			}
		})
	}
}

func TestRequestEdges(t *testing.T) {
	user := []adapters.Message{{Role: adapters.RoleUser, Content: []adapters.Part{
		{Type: adapters.PartText, Text: "What is "}, {Type: adapters.PartText, Text: "this?"},
		{Type: adapters.PartImage, Image: &adapters.Image{MediaType: "image/png", Data: "iVBORw0KGgo="}},
	}}}
	tools := []adapters.Tool{{Name: "f"}}
	for _, tc := range []struct {
		name  string
		req   adapters.Request
		param string // the field refused, or "" with want checked
		want  string
	}{
		{"text parts join, images go bare", adapters.Request{Messages: user}, "", `"content":"What is this?","images":["iVBORw0KGgo="]`},
		{"stream false is sent", adapters.Request{Messages: user}, "", `"stream":false`},
		{"tool choice none leaves the tools out", adapters.Request{Messages: user, Tools: tools, ToolChoice: adapters.ToolChoice{Mode: adapters.ToolChoiceNone}}, "", `"stream":false}`},
		{"json mode", adapters.Request{Messages: user, ResponseFormat: &adapters.ResponseFormat{Type: "json_object"}}, "", `"format":"json"`},
		{"json schema", adapters.Request{Messages: user, ResponseFormat: &adapters.ResponseFormat{Type: "json_schema", Schema: json.RawMessage(`{"type":"object"}`)}}, "", `"format":{"type":"object"}`},
		{"reasoning effort is think", adapters.Request{Messages: user, ReasoningEffort: "high"}, "", `"think":"high"`},
		{"required tool is refused", adapters.Request{Messages: user, Tools: tools, ToolChoice: adapters.ToolChoice{Mode: adapters.ToolChoiceRequired}}, "tool_choice", ""},
		{"named tool is refused", adapters.Request{Messages: user, Tools: tools, ToolChoice: adapters.ToolChoice{Mode: adapters.ToolChoiceTool, Name: "f"}}, "tool_choice", ""},
		{"image URL is refused", adapters.Request{Messages: []adapters.Message{{Role: adapters.RoleUser, Content: []adapters.Part{{Type: adapters.PartImage, Image: &adapters.Image{URL: "https://example.com/a.png"}}}}}}, "messages[0].content[0].image_url", ""},
		{"a result for an unknown call is refused", adapters.Request{Messages: []adapters.Message{{Role: adapters.RoleTool, ToolCallID: "x"}}}, "messages[0].tool_call_id", ""},
		{"several choices are refused", adapters.Request{N: 3, Messages: user}, "n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body, err := EncodeRequest(&tc.req, "m")
			if tc.param != "" {
				var re *adapters.RequestError
				if !errors.As(err, &re) || re.Param != tc.param {
					t.Errorf("error %v, want a RequestError on %s", err, tc.param)
				}
				return
			}
			if err != nil || !bytes.Contains(body, []byte(tc.want)) {
				t.Errorf("request %s (%v), want %s in it", body, err, tc.want)
			}
		})
	}
}
