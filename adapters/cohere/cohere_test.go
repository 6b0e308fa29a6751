package cohere

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

func fixture(name string) []byte { return testkit.ProviderFixture("cohere", name) }

// Whole answers and streams of the same scenario say the same thing: text
// and tool arguments joined from the stream equal the whole answer's,
// usage is the model's token counts in both.
func TestResponseAndStreamAgree(t *testing.T) {
	for _, tc := range []struct {
		name     string
		text     string
		calls    int
		finish   adapters.FinishReason
		usage    adapters.Usage
		toolPlan string
	}{
		{"chat", "Red, yellow, and blue.", 0, adapters.FinishStop, adapters.Usage{PromptTokens: 503, CompletionTokens: 9, TotalTokens: 512}, ""},
		{"tool_call", "", 1, adapters.FinishToolCalls, adapters.Usage{PromptTokens: 1042, CompletionTokens: 57, TotalTokens: 1099}, "I will look up the current weather in Paris."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := DecodeResponse(fixture(tc.name + "_response.json"))
			if err != nil {
				t.Fatal(err)
			}
			if resp.Text != tc.text || resp.Finish != tc.finish || len(resp.ToolCalls) != tc.calls || resp.Usage != tc.usage || resp.Reasoning != tc.toolPlan {
				t.Errorf("response %+v", resp)
			}
			j := testkit.JoinStream(t, NewStreamDecoder(bytes.NewReader(fixture(tc.name+"_stream.sse"))), 100)
			if !errors.Is(j.End, io.EOF) || j.Text != resp.Text || j.Reasoning != resp.Reasoning || j.Finish != resp.Finish || j.Usage == nil || *j.Usage != resp.Usage || j.ID == "" {
				t.Errorf("stream joined to %+v (usage %+v), want %+v", j, j.Usage, resp)
			}
			if !reflect.DeepEqual(j.ToolCalls, resp.ToolCalls) {
				t.Errorf("stream calls %+v, want %+v", j.ToolCalls, resp.ToolCalls)
			}
			for _, c := range j.ToolCalls {
				if c.ID != "get_weather_k7m2x9p4q1vz" || !json.Valid([]byte(c.Arguments)) {
					t.Errorf("call %+v", c)
				}
			}
		})
	}
}

func TestUsageFallsBackToBilledUnits(t *testing.T) {
	resp, err := DecodeResponse([]byte(`{"id":"x","message":{"content":[{"type":"text","text":"a"}]},"finish_reason":"MAX_TOKENS","usage":{"billed_units":{"input_tokens":17,"output_tokens":7},"cached_tokens":4}}`))
	want := adapters.Usage{PromptTokens: 17, CompletionTokens: 7, TotalTokens: 24, CachedTokens: 4}
	if err != nil || resp.Usage != want || resp.Finish != adapters.FinishLength {
		t.Errorf("response %+v (%v), want usage %+v", resp, err, want)
	}
}

// The stream's tool-call index counts content blocks, so it need not start
// at 0; OpenAI's counts tool calls from 0.
func TestStreamToolIndexCountsCallsOnly(t *testing.T) {
	s := "event: message-start\ndata: {\"id\":\"m\",\"type\":\"message-start\"}\n\n" +
		"event: content-delta\ndata: {\"type\":\"content-delta\",\"index\":0,\"delta\":{\"message\":{\"content\":{\"text\":\"Checking.\"}}}}\n\n" +
		"event: tool-call-start\ndata: {\"type\":\"tool-call-start\",\"index\":1,\"delta\":{\"message\":{\"tool_calls\":{\"id\":\"a_1\",\"type\":\"function\",\"function\":{\"name\":\"a\",\"arguments\":\"\"}}}}}\n\n" +
		"event: tool-call-delta\ndata: {\"type\":\"tool-call-delta\",\"index\":1,\"delta\":{\"message\":{\"tool_calls\":{\"function\":{\"arguments\":\"{}\"}}}}}\n\n" +
		"event: tool-call-start\ndata: {\"type\":\"tool-call-start\",\"index\":2,\"delta\":{\"message\":{\"tool_calls\":{\"id\":\"b_2\",\"type\":\"function\",\"function\":{\"name\":\"b\",\"arguments\":\"{\\\"x\\\"\"}}}}}\n\n" +
		"event: tool-call-delta\ndata: {\"type\":\"tool-call-delta\",\"index\":2,\"delta\":{\"message\":{\"tool_calls\":{\"function\":{\"arguments\":\":1}\"}}}}}\n\n" +
		"event: message-end\ndata: {\"type\":\"message-end\",\"delta\":{\"finish_reason\":\"TOOL_CALL\"}}\n\n"
	j := testkit.JoinStream(t, NewStreamDecoder(strings.NewReader(s)), 50)
	want := []adapters.ToolCall{{ID: "a_1", Name: "a", Arguments: "{}"}, {ID: "b_2", Name: "b", Arguments: `{"x":1}`}}
	if !reflect.DeepEqual(j.ToolCalls, want) || j.Text != "Checking." || j.Finish != adapters.FinishToolCalls {
		t.Errorf("joined %+v", j)
	}
}

func TestStreamEnds(t *testing.T) {
	for _, tc := range []struct {
		name, stream string
		end          error
		errKind      adapters.ErrorKind
	}{
		{"message-end without [DONE]", "event: message-end\ndata: {\"type\":\"message-end\",\"delta\":{\"finish_reason\":\"COMPLETE\"}}\n\n", io.EOF, ""},
		{"cut before message-end", "event: message-start\ndata: {\"id\":\"m\",\"type\":\"message-start\"}\n\n", io.ErrUnexpectedEOF, ""},
		{"ERROR with a message", "event: message-end\ndata: {\"type\":\"message-end\",\"delta\":{\"finish_reason\":\"ERROR\",\"error\":\"internal\"}}\n\n", io.EOF, adapters.ErrServer},
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
		name      string
		status    int
		body      []byte
		header    http.Header
		kind      adapters.ErrorKind
		retryable bool
	}{
		{"401", 401, fixture("error_401.json"), nil, adapters.ErrAuth, false},
		{"498 invalid token", 498, []byte(`{"message":"invalid token"}`), nil, adapters.ErrAuth, false},
		{"429", 429, fixture("error_429.json"), http.Header{"Retry-After": {"3"}}, adapters.ErrRateLimit, true},
		{"context length", 400, []byte(`{"message":"too many tokens: size limit exceeded by 1711 tokens. Try using shorter or fewer inputs, or setting prompt_truncation='AUTO'."}`), nil, adapters.ErrContextLength, false},
		{"422", 422, []byte(`{"message":"invalid request: message must be at least 1 token long"}`), nil, adapters.ErrInvalidRequest, false},
		{"503", 503, []byte(`{"message":"service unavailable"}`), nil, adapters.ErrServer, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := DecodeError(tc.status, tc.header, tc.body)
			if e.Kind != tc.kind || e.Retryable != tc.retryable || e.Message == "" {
				t.Errorf("decoded %+v", e)
			}
			if tc.header != nil && e.RetryAfter == 0 {
				t.Errorf("retry-after lost: %+v", e)
			}
		})
	}
}

// The wire reference's requests are what the gateway writes for the same
// unified requests.
func TestEncodeRequest(t *testing.T) {
	schema := json.RawMessage(`{"type":"object","properties":{"location":{"type":"string","description":"City and country, e.g. Paris, France"},"unit":{"type":"string","enum":["celsius","fahrenheit"]}},"required":["location","unit"]}`)
	temp, p, k, seed, zero := 0.2, 0.95, 0, int64(42), 0.0
	text := func(s string) []adapters.Part { return []adapters.Part{{Type: adapters.PartText, Text: s}} }
	call := adapters.ToolCall{ID: "get_weather_k7m2x9p4q1vz", Name: "get_weather", Arguments: `{"location":"Paris, France","unit":"celsius"}`}
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
			Temperature: &temp, TopP: &p, TopK: &k, MaxTokens: 64, Stop: []string{"\n\n"}, Seed: &seed,
			FrequencyPenalty: &zero, PresencePenalty: &zero,
		}, nil},
		{"tool_call_request.json", adapters.Request{
			Messages: []adapters.Message{{Role: adapters.RoleUser, Content: text("What is the weather in Paris right now?")}},
			Tools:    []adapters.Tool{{Name: "get_weather", Description: "Get the current weather for a city.", Parameters: schema, Strict: true}},
		}, []string{"messages", "stream"}},
		{"tool_result_request.json", adapters.Request{
			Messages: []adapters.Message{
				{Role: adapters.RoleUser, Content: text("What is the weather in Paris right now?")},
				{Role: adapters.RoleAssistant, ToolCalls: []adapters.ToolCall{call}},
				{Role: adapters.RoleTool, ToolCallID: call.ID, Content: text(`{"temperature":18,"condition":"cloudy"}`)},
			},
		}, []string{"tools", "stream", "tool_plan"}},
	} {
		t.Run(tc.fixture, func(t *testing.T) {
			body, err := EncodeRequest(&tc.req, "command-a-03-2025")
			if err != nil {
				t.Fatal(err)
			}
			var got, want map[string]any
			_ = json.Unmarshal(body, &got)
			_ = json.Unmarshal(fixture(tc.fixture), &want)
			for _, k := range tc.ignore {
				switch k {
				case "messages": // the fixture sends a string, the gateway text parts
					got["messages"].([]any)[0].(map[string]any)["content"] = "What is the weather in Paris right now?"
				case "tool_plan": // the gateway has no tool plan to send back
					delete(want["messages"].([]any)[1].(map[string]any), "tool_plan")
					got["messages"].([]any)[0].(map[string]any)["content"] = "What is the weather in Paris right now?"
				default:
					delete(want, k)
					delete(got, k)
				}
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("request\n%s\nwant %s's", body, tc.fixture)
			}
		})
	}
}

func TestToolChoice(t *testing.T) {
	req := adapters.Request{
		Messages: []adapters.Message{{Role: adapters.RoleUser, Content: []adapters.Part{{Type: adapters.PartText, Text: "hi"}}}},
		Tools:    []adapters.Tool{{Name: "a"}, {Name: "b"}},
	}
	for _, tc := range []struct {
		choice adapters.ToolChoice
		want   string
		tools  int
	}{
		{adapters.ToolChoice{}, "", 2},
		{adapters.ToolChoice{Mode: adapters.ToolChoiceAuto}, "", 2},
		{adapters.ToolChoice{Mode: adapters.ToolChoiceNone}, "NONE", 2},
		{adapters.ToolChoice{Mode: adapters.ToolChoiceRequired}, "REQUIRED", 2},
		{adapters.ToolChoice{Mode: adapters.ToolChoiceTool, Name: "b"}, "REQUIRED", 1},
	} {
		r := req
		r.ToolChoice = tc.choice
		body, err := EncodeRequest(&r, "m")
		var w struct {
			ToolChoice string            `json:"tool_choice"`
			Tools      []json.RawMessage `json:"tools"`
		}
		_ = json.Unmarshal(body, &w)
		if err != nil || w.ToolChoice != tc.want || len(w.Tools) != tc.tools {
			t.Errorf("%+v: %s (%v)", tc.choice, body, err)
		}
	}
}

func TestImagesAreDataURLs(t *testing.T) {
	req := &adapters.Request{Messages: []adapters.Message{{Role: adapters.RoleUser, Content: []adapters.Part{
		{Type: adapters.PartImage, Image: &adapters.Image{MediaType: "image/png", Data: "iVBORw0KGgo="}},
		{Type: adapters.PartImage, Image: &adapters.Image{URL: "https://example.com/a.png", Detail: "low"}},
	}}}}
	body, err := EncodeRequest(req, "m")
	if err != nil || !bytes.Contains(body, []byte(`"url":"data:image/png;base64,iVBORw0KGgo="`)) || !bytes.Contains(body, []byte(`"url":"https://example.com/a.png","detail":"low"`)) {
		t.Errorf("request %s (%v)", body, err)
	}
}

// An assistant turn's text before its tool calls goes back as the tool plan.
func TestTextBeforeCallsIsTheToolPlan(t *testing.T) {
	req := &adapters.Request{Messages: []adapters.Message{{Role: adapters.RoleAssistant,
		Content:   []adapters.Part{{Type: adapters.PartText, Text: "I'll check."}},
		ToolCalls: []adapters.ToolCall{{ID: "c_1", Name: "f", Arguments: "{}"}}}}}
	body, err := EncodeRequest(req, "m")
	if err != nil || !bytes.Contains(body, []byte(`"tool_plan":"I'll check."`)) || bytes.Contains(body, []byte(`"content"`)) {
		t.Errorf("request %s (%v)", body, err)
	}
}
