package demo

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

const weatherRequest = `{"model":"demo","messages":[{"role":"user","content":"Weather in Paris?"}],` +
	`"tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"location":{"type":"string"},"unit":{"type":"string","enum":["celsius","fahrenheit"]}},"required":["location","unit"]}}}]%s}`

func TestDemoCallsTools(t *testing.T) {
	wantArgs := map[string]any{"location": "Weather in Paris?", "unit": "celsius"}
	t.Run("whole", func(t *testing.T) {
		w := httptest.NewRecorder()
		(&Handler{}).ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/v1/chat/completions", strings.NewReader(strings.Replace(weatherRequest, "%s", "", 1))))
		var resp struct {
			Choices []struct {
				Message struct {
					ToolCalls []struct {
						ID       string `json:"id"`
						Function struct{ Name, Arguments string }
					} `json:"tool_calls"`
				} `json:"message"`
				FinishReason string `json:"finish_reason"`
			} `json:"choices"`
		}
		if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil || len(resp.Choices) != 1 || len(resp.Choices[0].Message.ToolCalls) != 1 {
			t.Fatalf("%s", w.Body)
		}
		tc := resp.Choices[0].Message.ToolCalls[0]
		var args map[string]any
		if err := json.Unmarshal([]byte(tc.Function.Arguments), &args); err != nil || tc.Function.Name != "get_weather" || resp.Choices[0].FinishReason != "tool_calls" {
			t.Fatalf("%s", w.Body)
		}
		if args["location"] != wantArgs["location"] || args["unit"] != wantArgs["unit"] {
			t.Errorf("arguments %v", args)
		}
	})
	t.Run("streamed", func(t *testing.T) {
		w := httptest.NewRecorder()
		(&Handler{}).ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/v1/chat/completions", strings.NewReader(strings.Replace(weatherRequest, "%s", `,"stream":true,"stream_options":{"include_usage":true}`, 1))))
		var joined strings.Builder
		fragments := 0
		for _, ev := range strings.Split(w.Body.String(), "\n\n") {
			data, ok := strings.CutPrefix(ev, "data: ")
			if !ok || data == "[DONE]" {
				continue
			}
			var c struct {
				Choices []struct {
					Delta struct {
						ToolCalls []struct {
							Function struct{ Arguments string }
						} `json:"tool_calls"`
					} `json:"delta"`
				} `json:"choices"`
			}
			_ = json.Unmarshal([]byte(data), &c)
			for _, ch := range c.Choices {
				for _, tc := range ch.Delta.ToolCalls {
					if tc.Function.Arguments != "" {
						fragments++
					}
					joined.WriteString(tc.Function.Arguments)
				}
			}
		}
		var args map[string]any
		if err := json.Unmarshal([]byte(joined.String()), &args); err != nil || fragments < 2 {
			t.Fatalf("%d fragments join to %q: %v", fragments, joined.String(), err)
		}
		if !strings.Contains(w.Body.String(), `"finish_reason":"tool_calls"`) || !strings.HasSuffix(w.Body.String(), "data: [DONE]\n\n") {
			t.Errorf("stream:\n%s", w.Body)
		}
	})
	t.Run("not after a tool's result", func(t *testing.T) {
		body := `{"model":"demo","messages":[{"role":"user","content":"hi"},{"role":"assistant","tool_calls":[{"id":"c","type":"function","function":{"name":"get_weather","arguments":"{}"}}]},{"role":"tool","tool_call_id":"c","content":"18C"}],"tools":[{"type":"function","function":{"name":"get_weather"}}]}`
		w := httptest.NewRecorder()
		(&Handler{}).ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/v1/chat/completions", strings.NewReader(body)))
		if strings.Contains(w.Body.String(), "tool_calls") || !strings.Contains(w.Body.String(), `"finish_reason":"stop"`) {
			t.Errorf("%s", w.Body)
		}
	})
}
