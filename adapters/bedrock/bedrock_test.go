package bedrock

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"reflect"
	"testing"

	"portcullis/adapters"
	"portcullis/internal/testkit"
)

func fixture(name string) []byte { return testkit.ProviderFixture("bedrock", name) }

// stream is a stream fixture as the binary frames Bedrock sends.
func stream(name string) []byte {
	return bytes.Join(testkit.EventStreamFrames(fixture(name)), nil)
}

// Whole answers and event streams of the same scenario say the same thing.
func TestResponseAndStreamAgree(t *testing.T) {
	for _, tc := range []struct {
		name   string
		text   string
		calls  []adapters.ToolCall
		finish adapters.FinishReason
		usage  adapters.Usage
	}{
		{"chat", "Red, yellow, and blue.", nil, adapters.FinishStop, adapters.Usage{PromptTokens: 24, CompletionTokens: 10, TotalTokens: 34}},
		{"tool_call", "I'll check the current weather in Paris.",
			[]adapters.ToolCall{{ID: "tooluse_Qm3xR8vL2kPzN7wT1yBc0A", Name: "get_weather", Arguments: `{"location":"Paris, France","unit":"celsius"}`}},
			adapters.FinishToolCalls, adapters.Usage{PromptTokens: 412, CompletionTokens: 71, TotalTokens: 483}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := DecodeResponse(fixture(tc.name + "_response.json"))
			if err != nil {
				t.Fatal(err)
			}
			if resp.Text != tc.text || resp.Finish != tc.finish || resp.Usage != tc.usage || resp.ID == "" || len(resp.ToolCalls) != len(tc.calls) {
				t.Errorf("response %+v", resp)
			}
			if len(tc.calls) > 0 && !reflect.DeepEqual(resp.ToolCalls, tc.calls) {
				t.Errorf("calls %+v", resp.ToolCalls)
			}
			j := testkit.JoinStream(t, NewStreamDecoder(bytes.NewReader(stream(tc.name+"_stream.eventstream.txt"))), 100)
			if !errors.Is(j.End, io.EOF) || j.Text != resp.Text || j.Finish != resp.Finish || j.Usage == nil || *j.Usage != resp.Usage {
				t.Errorf("stream joined to %+v (usage %+v), want %+v", j, j.Usage, resp)
			}
			for i, c := range j.ToolCalls {
				var got, want any
				_ = json.Unmarshal([]byte(c.Arguments), &got)
				_ = json.Unmarshal([]byte(tc.calls[i].Arguments), &want)
				if c.ID != tc.calls[i].ID || c.Name != tc.calls[i].Name || !reflect.DeepEqual(got, want) {
					t.Errorf("stream call %+v, want %+v", c, tc.calls[i])
				}
			}
		})
	}
}

func TestUsageCountsCachedTokens(t *testing.T) {
	resp, err := DecodeResponse([]byte(`{"output":{"message":{"content":[{"text":"a"}]}},"stopReason":"max_tokens","usage":{"inputTokens":10,"outputTokens":5,"cacheReadInputTokens":30,"cacheWriteInputTokens":2}}`))
	want := adapters.Usage{PromptTokens: 42, CompletionTokens: 5, TotalTokens: 47, CachedTokens: 30, CacheWriteTokens: 2}
	if err != nil || resp.Usage != want || resp.Finish != adapters.FinishLength {
		t.Errorf("response %+v (%v), want usage %+v", resp, err, want)
	}
}

func TestStreamEnds(t *testing.T) {
	frame := func(event, payload string) []byte {
		return adapters.AppendFrame(nil, []string{":message-type", ":event-type"}, map[string]string{":message-type": "event", ":event-type": event}, []byte(payload))
	}
	exception := adapters.AppendFrame(nil, []string{":message-type", ":exception-type"},
		map[string]string{":message-type": "exception", ":exception-type": "throttlingException"}, []byte(`{"message":"Too many requests"}`))
	start, delta := frame("messageStart", `{"role":"assistant"}`), frame("contentBlockDelta", `{"contentBlockIndex":0,"delta":{"text":"Red"}}`)
	for _, tc := range []struct {
		name    string
		in      []byte
		end     error
		errKind adapters.ErrorKind
	}{
		{"cut before messageStop", append(start, delta...), io.ErrUnexpectedEOF, ""},
		{"messageStop without metadata", bytes.Join([][]byte{start, delta, frame("messageStop", `{"stopReason":"end_turn"}`)}, nil), io.EOF, ""},
		{"an exception frame", bytes.Join([][]byte{start, delta, exception}, nil), io.EOF, adapters.ErrRateLimit},
		{"a broken frame", append(start, delta[:len(delta)-1]...), io.ErrUnexpectedEOF, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			j := testkit.JoinStream(t, NewStreamDecoder(bytes.NewReader(tc.in)), 20)
			if !errors.Is(j.End, tc.end) || (tc.errKind != "") != (j.Err != nil) || j.Err != nil && j.Err.Kind != tc.errKind {
				t.Errorf("end %v err %+v", j.End, j.Err)
			}
		})
	}
}

func TestErrors(t *testing.T) {
	amzn := func(typ string) http.Header {
		return http.Header{"X-Amzn-Errortype": {typ + ":http://internal.amazon.com/coral/com.amazon.bedrock/"}}
	}
	for _, tc := range []struct {
		status    int
		header    http.Header
		body      []byte
		kind      adapters.ErrorKind
		retryable bool
	}{
		{429, amzn("ThrottlingException"), fixture("error_429.json"), adapters.ErrRateLimit, true},
		{429, amzn("ModelNotReadyException"), []byte(`{"message":"Model is not ready"}`), adapters.ErrOverloaded, true},
		{400, amzn("ValidationException"), fixture("error_400_validation.json"), adapters.ErrInvalidRequest, false},
		{400, amzn("ValidationException"), []byte(`{"message":"Input is too long for requested model."}`), adapters.ErrContextLength, false},
		{403, amzn("AccessDeniedException"), []byte(`{"message":"You don't have access to the model with the specified model ID."}`), adapters.ErrAuth, false},
		{403, nil, []byte(`{"message":"Bearer token invalid"}`), adapters.ErrAuth, false},
		{404, nil, []byte(`{"__type":"com.amazon.coral.service#ResourceNotFoundException","message":"no such model"}`), adapters.ErrNotFound, false},
		{503, amzn("ServiceUnavailableException"), []byte(`{"message":"busy"}`), adapters.ErrOverloaded, true},
	} {
		e := DecodeError(tc.status, tc.header, tc.body)
		if e.Kind != tc.kind || e.Retryable != tc.retryable || e.Message == "" {
			t.Errorf("%d %v %s: decoded %+v", tc.status, tc.header, tc.body, e)
		}
	}
}

// The wire reference's requests are what the gateway writes for the same
// unified requests.
func TestEncodeRequest(t *testing.T) {
	schema := json.RawMessage(`{"type":"object","properties":{"location":{"type":"string","description":"City and country, e.g. Paris, France"},"unit":{"type":"string","enum":["celsius","fahrenheit"]}},"required":["location","unit"]}`)
	resultSchema := json.RawMessage(`{"type":"object","properties":{"location":{"type":"string"},"unit":{"type":"string","enum":["celsius","fahrenheit"]}},"required":["location","unit"]}`)
	temp, topP, topK := 0.2, 0.9, 50
	text := func(s string) []adapters.Part { return []adapters.Part{{Type: adapters.PartText, Text: s}} }
	call := adapters.ToolCall{ID: "tooluse_Qm3xR8vL2kPzN7wT1yBc0A", Name: "get_weather", Arguments: `{"location":"Paris, France","unit":"celsius"}`}
	for _, tc := range []struct {
		fixture string
		req     adapters.Request
	}{
		{"chat_request.json", adapters.Request{
			Messages: []adapters.Message{
				{Role: adapters.RoleSystem, Content: text("You are a terse assistant. Answer in one sentence.")},
				{Role: adapters.RoleUser, Content: text("Name the three primary colors.")},
			},
			MaxTokens: 256, Temperature: &temp, TopP: &topP, TopK: &topK, Stop: []string{"\n\nHuman:"},
		}},
		{"tool_call_request.json", adapters.Request{
			Messages:   []adapters.Message{{Role: adapters.RoleUser, Content: text("What is the weather in Paris right now?")}},
			Tools:      []adapters.Tool{{Name: "get_weather", Description: "Get the current weather for a city.", Parameters: schema}},
			ToolChoice: adapters.ToolChoice{Mode: adapters.ToolChoiceAuto},
			MaxTokens:  1024,
		}},
		{"tool_result_request.json", adapters.Request{
			Messages: []adapters.Message{
				{Role: adapters.RoleUser, Content: text("What is the weather in Paris right now?")},
				{Role: adapters.RoleAssistant, Content: text("I'll check the current weather in Paris."), ToolCalls: []adapters.ToolCall{call}},
				{Role: adapters.RoleTool, ToolCallID: call.ID, Content: text(`{"temperature":18,"condition":"cloudy"}`)},
			},
			Tools:     []adapters.Tool{{Name: "get_weather", Description: "Get the current weather for a city.", Parameters: resultSchema}},
			MaxTokens: 1024,
		}},
	} {
		t.Run(tc.fixture, func(t *testing.T) {
			body, err := EncodeRequest(&tc.req, "anthropic.claude-sonnet-4-5-20250929-v1:0")
			if err != nil {
				t.Fatal(err)
			}
			var got, want any
			_ = json.Unmarshal(body, &got)
			_ = json.Unmarshal(fixture(tc.fixture), &want)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("request\n%s\nwant %s's", body, tc.fixture)
			}
		})
	}
}

func TestRequestEdges(t *testing.T) {
	user := func(parts ...adapters.Part) adapters.Message {
		return adapters.Message{Role: adapters.RoleUser, Content: parts}
	}
	hi := adapters.Part{Type: adapters.PartText, Text: "hi"}
	call := adapters.ToolCall{ID: "t1", Name: "f", Arguments: "{}"}
	history := []adapters.Message{user(hi), {Role: adapters.RoleAssistant, ToolCalls: []adapters.ToolCall{call}},
		{Role: adapters.RoleTool, ToolCallID: "t1", Content: []adapters.Part{{Type: adapters.PartText, Text: "18C"}}}, user(hi)}
	hot := 1.7
	for _, tc := range []struct {
		name  string
		req   adapters.Request
		param string
		want  []string
	}{
		{"temperature is clamped to 1", adapters.Request{Messages: []adapters.Message{user(hi)}, Temperature: &hot}, "", []string{`"temperature":1`}},
		{"tool results and the user's words make one user turn", adapters.Request{Messages: history}, "",
			[]string{`{"role":"user","content":[{"toolResult":{"toolUseId":"t1","content":[{"text":"18C"}],"status":"success"}},{"text":"hi"}]}`}},
		{"none with tool blocks in the history keeps the tools, auto", adapters.Request{Messages: history, Tools: []adapters.Tool{{Name: "f"}}, ToolChoice: adapters.ToolChoice{Mode: adapters.ToolChoiceNone}}, "",
			[]string{`"toolConfig":{"tools":[{"toolSpec":{"name":"f","inputSchema":{"json":{"type":"object","properties":{}}}}}]}`}},
		{"required is any", adapters.Request{Messages: []adapters.Message{user(hi)}, Tools: []adapters.Tool{{Name: "f"}}, ToolChoice: adapters.ToolChoice{Mode: adapters.ToolChoiceRequired}}, "", []string{`"toolChoice":{"any":{}}`}},
		{"a named tool", adapters.Request{Messages: []adapters.Message{user(hi)}, Tools: []adapters.Tool{{Name: "f"}}, ToolChoice: adapters.ToolChoice{Mode: adapters.ToolChoiceTool, Name: "f"}}, "", []string{`"toolChoice":{"tool":{"name":"f"}}`}},
		{"an inline image", adapters.Request{Messages: []adapters.Message{user(adapters.Part{Type: adapters.PartImage, Image: &adapters.Image{MediaType: "image/png", Data: "iVBORw0KGgo="}})}}, "",
			[]string{`{"image":{"format":"png","source":{"bytes":"iVBORw0KGgo="}}}`}},
		{"a JSON schema goes as a string", adapters.Request{Messages: []adapters.Message{user(hi)}, ResponseFormat: &adapters.ResponseFormat{Type: "json_schema", Name: "out", Schema: json.RawMessage(`{"type":"object"}`)}}, "",
			[]string{`"outputConfig":{"textFormat":{"type":"json_schema","structure":{"jsonSchema":{"schema":"{\"type\":\"object\"}","name":"out"}}}}`}},
		{"an image URL is refused", adapters.Request{Messages: []adapters.Message{user(adapters.Part{Type: adapters.PartImage, Image: &adapters.Image{URL: "https://example.com/a.png"}})}}, "messages[0].content[0].image_url", nil},
		{"JSON mode without a schema is refused", adapters.Request{Messages: []adapters.Message{user(hi)}, ResponseFormat: &adapters.ResponseFormat{Type: "json_object"}}, "response_format", nil},
		{"several choices are refused", adapters.Request{N: 2, Messages: []adapters.Message{user(hi)}}, "n", nil},
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
			for _, w := range tc.want {
				if err != nil || !bytes.Contains(body, []byte(w)) {
					t.Errorf("request %s (%v), want %s in it", body, err, w)
				}
			}
		})
	}
}

func TestPath(t *testing.T) {
	if p := Path("anthropic.claude-sonnet-4-5-20250929-v1:0", true); p != "/model/anthropic.claude-sonnet-4-5-20250929-v1:0/converse-stream" {
		t.Errorf("path %q", p)
	}
	if p := Path("arn:aws:bedrock:us-east-1:123:inference-profile/us.x", false); p != "/model/arn:aws:bedrock:us-east-1:123:inference-profile%2Fus.x/converse" {
		t.Errorf("path %q", p)
	}
}
