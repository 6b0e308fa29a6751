package gemini

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"portcullis/adapters"
	"portcullis/internal/testkit"
)

func fixture(name string) []byte { return testkit.ProviderFixture("gemini", name) }

// Whole answers and streams of the same scenario say the same thing: the
// text joined from a stream is the non-streamed text, a function call
// under STOP is a tool call, and usage counts thinking tokens as output.
func TestResponseAndStreamAgree(t *testing.T) {
	for _, tc := range []struct {
		name      string
		wantText  string
		wantCalls int
		finish    adapters.FinishReason
		usage     adapters.Usage
	}{
		{"chat", "Red, yellow, and blue.", 0, adapters.FinishStop,
			adapters.Usage{PromptTokens: 14, CompletionTokens: 88, TotalTokens: 102, ReasoningTokens: 81}},
		{"tool_call", "", 1, adapters.FinishToolCalls,
			adapters.Usage{PromptTokens: 58, CompletionTokens: 78, TotalTokens: 136, ReasoningTokens: 57}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := DecodeResponse(fixture(tc.name + "_response.json"))
			if err != nil {
				t.Fatal(err)
			}
			if resp.Text != tc.wantText || resp.Finish != tc.finish || len(resp.ToolCalls) != tc.wantCalls || resp.Usage != tc.usage {
				t.Errorf("response %+v", resp)
			}
			j := testkit.JoinStream(t, NewStreamDecoder(bytes.NewReader(fixture(tc.name+"_stream.sse"))), 100)
			if !errors.Is(j.End, io.EOF) || j.Text != resp.Text || j.Finish != resp.Finish || j.Usage == nil || *j.Usage != resp.Usage {
				t.Errorf("stream joined to %+v (usage %+v), want %+v", j, j.Usage, resp)
			}
			if j.Model != "gemini-2.5-flash" || j.ID == "" {
				t.Errorf("stream start %q %q", j.ID, j.Model)
			}
			if len(j.ToolCalls) != len(resp.ToolCalls) {
				t.Fatalf("stream calls %+v", j.ToolCalls)
			}
			for i, c := range j.ToolCalls {
				if c.Name != "get_weather" || c.Arguments != resp.ToolCalls[i].Arguments || !json.Valid([]byte(c.Arguments)) {
					t.Errorf("stream call %+v, response call %+v", c, resp.ToolCalls[i])
				}
			}
		})
	}
}

func TestUsageCountsCachedAndToolPromptTokens(t *testing.T) {
	resp, err := DecodeResponse([]byte(`{"candidates":[{"content":{"parts":[{"text":"ok"}]},"finishReason":"STOP"}],
		"usageMetadata":{"promptTokenCount":100,"cachedContentTokenCount":60,"toolUsePromptTokenCount":5,"candidatesTokenCount":3,"thoughtsTokenCount":7}}`))
	if err != nil {
		t.Fatal(err)
	}
	want := adapters.Usage{PromptTokens: 105, CompletionTokens: 10, TotalTokens: 115, CachedTokens: 60, ReasoningTokens: 7}
	if resp.Usage != want {
		t.Errorf("usage %+v, want %+v", resp.Usage, want)
	}
}

func TestFinishReasons(t *testing.T) {
	for _, tc := range []struct {
		body string
		want adapters.FinishReason
	}{
		{`{"candidates":[{"content":{"parts":[{"text":"a"}]},"finishReason":"MAX_TOKENS"}]}`, adapters.FinishLength},
		{`{"candidates":[{"content":{"parts":[{"text":"a"}]},"finishReason":"SAFETY"}]}`, adapters.FinishContentFilter},
		{`{"candidates":[{"content":{"parts":[{"text":"a"}]},"finishReason":"RECITATION"}]}`, adapters.FinishContentFilter},
		{`{"candidates":[{"content":{"parts":[{"text":"a"}]},"finishReason":"MALFORMED_FUNCTION_CALL"}]}`, adapters.FinishStop},
		{`{"promptFeedback":{"blockReason":"PROHIBITED_CONTENT"}}`, adapters.FinishContentFilter},
	} {
		resp, err := DecodeResponse([]byte(tc.body))
		if err != nil || resp.Finish != tc.want {
			t.Errorf("%s: finish %q (%v), want %q", tc.body, resp.Finish, err, tc.want)
		}
	}
}

func TestThoughtsAreReasoning(t *testing.T) {
	resp, err := DecodeResponse([]byte(`{"candidates":[{"content":{"parts":[{"thought":true,"text":"hmm"},{"text":"Blue."}]},"finishReason":"STOP"}]}`))
	if err != nil || resp.Reasoning != "hmm" || resp.Text != "Blue." {
		t.Errorf("response %+v (%v)", resp, err)
	}
}

func TestErrors(t *testing.T) {
	for _, tc := range []struct {
		name       string
		status     int
		body       []byte
		kind       adapters.ErrorKind
		retryable  bool
		retryAfter time.Duration
	}{
		{"a bad key is 400 but an auth error", 400, fixture("error_400_invalid_api_key.json"), adapters.ErrAuth, false, 0},
		{"429 waits as RetryInfo says", 429, fixture("error_429.json"), adapters.ErrRateLimit, true, 41 * time.Second},
		{"context length is matched by its text", 400, fixture("error_400_context_length.json"), adapters.ErrContextLength, false, 0},
		{"402 prepaid credit used up", 402, []byte(`{"error":{"code":402,"message":"credit","status":"RESOURCE_EXHAUSTED"}}`), adapters.ErrQuota, false, 0},
		{"503 overloaded", 503, []byte(`{"error":{"code":503,"message":"The model is overloaded.","status":"UNAVAILABLE"}}`), adapters.ErrOverloaded, true, 0},
		{"403", 403, []byte(`{"error":{"code":403,"message":"denied","status":"PERMISSION_DENIED"}}`), adapters.ErrPermission, false, 0},
		{"Vertex wraps it in an array", 404, []byte(`[{"error":{"code":404,"message":"models/x is not found","status":"NOT_FOUND"}}]`), adapters.ErrNotFound, false, 0},
		{"no body", 500, nil, adapters.ErrServer, true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := DecodeError(tc.status, http.Header{}, tc.body)
			if e.Kind != tc.kind || e.Retryable != tc.retryable || e.RetryAfter != tc.retryAfter {
				t.Errorf("decoded %+v", e)
			}
			if len(tc.body) > 0 && e.Message == "" {
				t.Errorf("no message in %+v", e)
			}
		})
	}
}

func TestErrorMidStream(t *testing.T) {
	stream := "data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Red\"}]}}]}\r\n\r\n" +
		"data: {\"error\":{\"code\":503,\"message\":\"overloaded\",\"status\":\"UNAVAILABLE\"}}\r\n\r\n"
	j := testkit.JoinStream(t, NewStreamDecoder(strings.NewReader(stream)), 20)
	if j.Text != "Red" || j.Err == nil || j.Err.Kind != adapters.ErrOverloaded || !errors.Is(j.End, io.EOF) {
		t.Errorf("joined %+v err %+v", j, j.Err)
	}
}

func TestStreamCutBeforeItsFinishIsBroken(t *testing.T) {
	j := testkit.JoinStream(t, NewStreamDecoder(strings.NewReader("data: {\"candidates\":[{\"content\":{\"parts\":[{\"text\":\"Red\"}]}}]}\n\n")), 20)
	if !errors.Is(j.End, io.ErrUnexpectedEOF) {
		t.Errorf("end %v, want io.ErrUnexpectedEOF", j.End)
	}
}

// The thoughtSignature Gemini put on a function call comes back on that
// call in the next turn, carried by the call id the client echoes; the
// tool's result is a functionResponse naming the tool.
func TestThoughtSignatureCrossesTurns(t *testing.T) {
	resp, err := DecodeResponse(fixture("tool_call_response.json"))
	if err != nil {
		t.Fatal(err)
	}
	call := resp.ToolCalls[0]
	for _, prefix := range []string{"", "toolu_"} { // Anthropic clients see toolu_ ids
		call := call
		call.ID = prefix + call.ID
		req := &adapters.Request{Messages: []adapters.Message{
			{Role: adapters.RoleUser, Content: []adapters.Part{{Type: adapters.PartText, Text: "What is the weather in Paris right now?"}}},
			{Role: adapters.RoleAssistant, ToolCalls: []adapters.ToolCall{call}},
			{Role: adapters.RoleTool, ToolCallID: call.ID, Content: []adapters.Part{{Type: adapters.PartText, Text: `{"temperature":18,"condition":"cloudy"}`}}},
		}}
		body, err := EncodeRequest(req, "gemini-2.5-flash")
		if err != nil {
			t.Fatal(err)
		}
		var got, want struct {
			Contents []wireContent `json:"contents"`
		}
		_ = json.Unmarshal(body, &got)
		_ = json.Unmarshal(fixture("tool_result_request.json"), &want)
		if !jsonEqual(t, got.Contents, want.Contents) {
			t.Errorf("prefix %q: contents\n%s\nwant those of tool_result_request.json", prefix, body)
		}
	}
}

func TestToolResultsNeedTheirCall(t *testing.T) {
	req := &adapters.Request{Messages: []adapters.Message{
		{Role: adapters.RoleTool, ToolCallID: "call_unknown", Content: []adapters.Part{{Type: adapters.PartText, Text: "18C"}}},
	}}
	var re *adapters.RequestError
	if _, err := EncodeRequest(req, "m"); !errors.As(err, &re) || re.Param != "messages[0].tool_call_id" {
		t.Errorf("error %v", err)
	}
}

func TestEncodeRequest(t *testing.T) {
	temp, topP, seed := 0.2, 0.95, int64(42)
	req := &adapters.Request{
		Messages: []adapters.Message{
			{Role: adapters.RoleSystem, Content: []adapters.Part{{Type: adapters.PartText, Text: "You are a terse assistant. Answer in one sentence."}}},
			{Role: adapters.RoleUser, Content: []adapters.Part{{Type: adapters.PartText, Text: "Name the three primary colors."}}},
		},
		MaxTokens: 256, Temperature: &temp, TopP: &topP, Stop: []string{"\n\n"}, Seed: &seed,
		User: "u1", Logprobs: true,
	}
	body, err := EncodeRequest(req, "gemini-2.5-flash")
	if err != nil {
		t.Fatal(err)
	}
	var got, want map[string]any
	_ = json.Unmarshal(body, &got)
	_ = json.Unmarshal(fixture("chat_request.json"), &want)
	// The fixture also sets what OpenAI has no word for.
	delete(want, "safetySettings")
	gc := want["generationConfig"].(map[string]any)
	delete(gc, "thinkingConfig")
	delete(gc, "candidateCount")
	if !reflect.DeepEqual(got, want) {
		t.Errorf("request\n%s\nwant chat_request.json's", body)
	}
	if strings.Join(req.Dropped, ",") != "logprobs,user" {
		t.Errorf("dropped %v", req.Dropped)
	}
}

func TestEncodeTools(t *testing.T) {
	schema := json.RawMessage(`{"type":"object","properties":{"location":{"type":"string","description":"City and country, e.g. Paris, France"},"unit":{"type":"string","enum":["celsius","fahrenheit"]}},"required":["location","unit"]}`)
	temp := 0.0
	req := &adapters.Request{
		Messages:    []adapters.Message{{Role: adapters.RoleUser, Content: []adapters.Part{{Type: adapters.PartText, Text: "What is the weather in Paris right now?"}}}},
		Tools:       []adapters.Tool{{Name: "get_weather", Description: "Get the current weather for a city.", Parameters: schema}},
		ToolChoice:  adapters.ToolChoice{Mode: adapters.ToolChoiceAuto},
		Temperature: &temp,
	}
	body, err := EncodeRequest(req, "m")
	if err != nil {
		t.Fatal(err)
	}
	var got, want any
	_ = json.Unmarshal(body, &got)
	_ = json.Unmarshal(fixture("tool_call_request.json"), &want)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("request\n%s\nwant tool_call_request.json's", body)
	}
	for mode, wantCfg := range map[adapters.ToolChoice]string{
		{Mode: adapters.ToolChoiceNone}:                      `{"functionCallingConfig":{"mode":"NONE"}}`,
		{Mode: adapters.ToolChoiceRequired}:                  `{"functionCallingConfig":{"mode":"ANY"}}`,
		{Mode: adapters.ToolChoiceTool, Name: "get_weather"}: `{"functionCallingConfig":{"mode":"ANY","allowedFunctionNames":["get_weather"]}}`,
	} {
		req.ToolChoice = mode
		body, _ := EncodeRequest(req, "m")
		var w struct {
			ToolConfig json.RawMessage `json:"toolConfig"`
		}
		_ = json.Unmarshal(body, &w)
		if string(w.ToolConfig) != wantCfg {
			t.Errorf("%v: toolConfig %s, want %s", mode, w.ToolConfig, wantCfg)
		}
	}
}

func TestRefused(t *testing.T) {
	user := func(parts ...adapters.Part) []adapters.Message {
		return []adapters.Message{{Role: adapters.RoleUser, Content: parts}}
	}
	for _, tc := range []struct {
		name  string
		req   adapters.Request
		param string
	}{
		{"several choices", adapters.Request{N: 2, Messages: user(adapters.Part{Type: adapters.PartText, Text: "hi"})}, "n"},
		{"an image URL", adapters.Request{Messages: user(adapters.Part{Type: adapters.PartImage, Image: &adapters.Image{URL: "https://example.com/a.png"}})}, "messages[0].content[0].image_url"},
		{"only a system prompt", adapters.Request{Messages: []adapters.Message{{Role: adapters.RoleSystem, Content: []adapters.Part{{Type: adapters.PartText, Text: "s"}}}}}, "messages"},
		{"arguments that are no object", adapters.Request{Messages: []adapters.Message{{Role: adapters.RoleAssistant, ToolCalls: []adapters.ToolCall{{ID: "c", Name: "f", Arguments: "[1]"}}}}}, "messages[0].tool_calls[0]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var re *adapters.RequestError
			if _, err := EncodeRequest(&tc.req, "m"); !errors.As(err, &re) || re.Param != tc.param {
				t.Errorf("error %v, want a RequestError on %s", err, tc.param)
			}
		})
	}
}

func TestImageInline(t *testing.T) {
	req := &adapters.Request{Messages: []adapters.Message{{Role: adapters.RoleUser, Content: []adapters.Part{
		{Type: adapters.PartText, Text: "What is in this picture?"},
		{Type: adapters.PartImage, Image: &adapters.Image{MediaType: "image/png", Data: "iVBORw0KGgo="}},
	}}}}
	body, err := EncodeRequest(req, "m")
	if err != nil || !bytes.Contains(body, []byte(`{"inlineData":{"mimeType":"image/png","data":"iVBORw0KGgo="}}`)) {
		t.Errorf("request %s (%v)", body, err)
	}
}

func TestPath(t *testing.T) {
	if p := Path("gemini-2.5-flash", true); p != "/models/gemini-2.5-flash:streamGenerateContent?alt=sse" {
		t.Errorf("stream path %q", p)
	}
	if p := Path("models/gemini-2.5-flash", false); p != "/models/gemini-2.5-flash:generateContent" {
		t.Errorf("path %q", p)
	}
}

func jsonEqual(t *testing.T, a, b any) bool {
	t.Helper()
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	var va, vb any
	_ = json.Unmarshal(ja, &va)
	_ = json.Unmarshal(jb, &vb)
	return reflect.DeepEqual(va, vb)
}

// Tool results and the user's words after them make one user turn.
func TestToolResultsAndUserWordsMerge(t *testing.T) {
	text := func(s string) []adapters.Part { return []adapters.Part{{Type: adapters.PartText, Text: s}} }
	req := &adapters.Request{Messages: []adapters.Message{
		{Role: adapters.RoleUser, Content: text("Weather in Paris and Rome?")},
		{Role: adapters.RoleAssistant, ToolCalls: []adapters.ToolCall{{ID: "a", Name: "w", Arguments: `{"c":"Paris"}`}, {ID: "b", Name: "w", Arguments: `{"c":"Rome"}`}}},
		{Role: adapters.RoleTool, ToolCallID: "a", Content: text("18C")},
		{Role: adapters.RoleTool, ToolCallID: "b", Content: text("24C")},
		{Role: adapters.RoleUser, Content: text("Thanks. Which is warmer?")},
	}}
	body, err := EncodeRequest(req, "m")
	if err != nil {
		t.Fatal(err)
	}
	var w wireRequest
	_ = json.Unmarshal(body, &w)
	if len(w.Contents) != 3 || len(w.Contents[2].Parts) != 3 || w.Contents[2].Parts[2].Text != "Thanks. Which is warmer?" ||
		string(w.Contents[2].Parts[1].FunctionResponse.Response) != `{"result":"24C"}` {
		t.Errorf("contents %s", body)
	}
}
