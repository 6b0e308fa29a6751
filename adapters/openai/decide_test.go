package openai

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

const weatherTool = `{"type":"function","function":{"name":"get_weather","parameters":{"type":"object"}}}`
const shellTool = `{"type":"function","function":{"name":"run_shell","parameters":{"type":"object"}}}`

func mustParse(t *testing.T, body string) *ChatRequest {
	t.Helper()
	req, err := ParseChatRequest([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func encodeMap(t *testing.T, req *ChatRequest) map[string]json.RawMessage {
	t.Helper()
	out, err := req.Encode("up", false)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(out, &m); err != nil {
		t.Fatalf("encoded body is not JSON: %s", out)
	}
	return m
}

func TestCapMaxTokens(t *testing.T) {
	msgs := `"messages":[{"role":"user","content":"hi"}]`
	for _, tc := range []struct {
		name, body string
		limit      int
		changed    bool
		wantField  string
		wantValue  string
	}{
		{"none asked: added", `{"model":"m",` + msgs + `}`, 100, true, "max_completion_tokens", "100"},
		{"more asked: lowered", `{"model":"m",` + msgs + `,"max_completion_tokens":500}`, 100, true, "max_completion_tokens", "100"},
		{"less asked: kept", `{"model":"m",` + msgs + `,"max_completion_tokens":50}`, 100, false, "max_completion_tokens", "50"},
		{"deprecated field kept in use", `{"model":"m",` + msgs + `,"max_tokens":500}`, 100, true, "max_tokens", "100"},
		{"no cap", `{"model":"m",` + msgs + `,"max_tokens":500}`, 0, false, "max_tokens", "500"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := mustParse(t, tc.body)
			if got := req.CapMaxTokens(tc.limit); got != tc.changed {
				t.Errorf("changed = %v", got)
			}
			m := encodeMap(t, req)
			if string(m[tc.wantField]) != tc.wantValue {
				t.Errorf("%s = %s in %v", tc.wantField, m[tc.wantField], m)
			}
			if tc.wantField == "max_tokens" && m["max_completion_tokens"] != nil {
				t.Errorf("added max_completion_tokens beside max_tokens")
			}
		})
	}
}

func TestStripTools(t *testing.T) {
	body := `{"model":"m","messages":[{"role":"user","content":"hi"}],"tools":[` + weatherTool + `,` + shellTool + `],"tool_choice":"auto","parallel_tool_calls":true,"temperature":0.5}`
	permitWeather := func(n string) bool { return n == "get_weather" }

	req := mustParse(t, body)
	if removed := req.StripTools(permitWeather); !reflect.DeepEqual(removed, []string{"run_shell"}) {
		t.Fatalf("removed %v", removed)
	}
	m := encodeMap(t, req)
	if string(m["tools"]) != "["+weatherTool+"]" || string(m["tool_choice"]) != `"auto"` || string(m["temperature"]) != "0.5" {
		t.Errorf("after stripping one tool: %v", m)
	}
	if !reflect.DeepEqual(req.Tools, []string{"get_weather"}) {
		t.Errorf("Tools = %v", req.Tools)
	}

	req = mustParse(t, body)
	if removed := req.StripTools(func(string) bool { return false }); len(removed) != 2 {
		t.Fatalf("removed %v", removed)
	}
	m = encodeMap(t, req)
	for _, gone := range []string{"tools", "tool_choice", "parallel_tool_calls"} {
		if _, ok := m[gone]; ok {
			t.Errorf("%s kept after every tool was stripped: %v", gone, m)
		}
	}
	if string(m["model"]) != `"up"` || string(m["temperature"]) != "0.5" || !strings.Contains(string(m["messages"]), "hi") {
		t.Errorf("other fields lost: %v", m)
	}

	req = mustParse(t, body)
	if removed := req.StripTools(func(string) bool { return true }); removed != nil {
		t.Errorf("nothing to strip, removed %v", removed)
	}
}

func TestHistoryToolCalls(t *testing.T) {
	body := `{"model":"m","messages":[
		{"role":"user","content":"weather?"},
		{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{}"}},{"id":"call_2","type":"function","function":{"name":"run_shell","arguments":"{}"}}]},
		{"role":"tool","tool_call_id":"call_1","content":"sunny"},
		{"role":"assistant","function_call":{"name":"legacy_fn","arguments":"{}"}},
		{"role":"user","content":"get_weather again","tool_calls":[{"function":{"name":"not_assistant"}}]}
	]}`
	got := mustParse(t, body).HistoryToolCalls()
	if !reflect.DeepEqual(got, []string{"get_weather", "run_shell", "legacy_fn"}) {
		t.Errorf("HistoryToolCalls = %v", got)
	}
}

// Every kind of tool has a name the policy checks: custom tools by their
// name, built-in ones by their type, in tools, tool_choice and history.
func TestEveryToolKindIsNamed(t *testing.T) {
	custom := `{"type":"custom","custom":{"name":"run_shell","description":"runs a command"}}`
	body := `{"model":"m","messages":[{"role":"user","content":"hi"},` +
		`{"role":"assistant","tool_calls":[{"id":"c1","type":"custom","custom":{"name":"run_shell","input":"ls"}}]}],` +
		`"tools":[` + weatherTool + `,` + custom + `,{"type":"web_search"}],` +
		`"tool_choice":{"type":"custom","custom":{"name":"run_shell"}}}`
	req := mustParse(t, body)
	if !reflect.DeepEqual(req.Tools, []string{"get_weather", "run_shell", "web_search"}) {
		t.Errorf("Tools = %v", req.Tools)
	}
	if !req.ToolChoiceNamed || req.ToolChoice != "run_shell" {
		t.Errorf("tool_choice = %q named %v", req.ToolChoice, req.ToolChoiceNamed)
	}
	if got := req.HistoryToolCalls(); !reflect.DeepEqual(got, []string{"run_shell"}) {
		t.Errorf("HistoryToolCalls = %v", got)
	}
	removed := req.StripTools(func(n string) bool { return n == "get_weather" })
	if !reflect.DeepEqual(removed, []string{"run_shell", "web_search"}) {
		t.Errorf("removed %v", removed)
	}
	if m := encodeMap(t, req); string(m["tools"]) != "["+weatherTool+"]" {
		t.Errorf("tools after strip: %s", m["tools"])
	}
}
