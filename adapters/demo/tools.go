package demo

import (
	"encoding/json"
	"fmt"
	"net/http"
)

// demoTool is a function tool offered to the demo model.
type demoTool struct {
	Type     string `json:"type"`
	Function struct {
		Name       string          `json:"name"`
		Parameters json.RawMessage `json:"parameters"`
	} `json:"function"`
}

// toolToCall is the tool the demo model calls: when tools are offered, the
// choice is not "none", and the conversation's last turn is not a tool's
// result, it calls the named tool or else the first, so clients can try
// tool use with no provider at all.
func toolToCall(req *chatRequest) *demoTool {
	if len(req.Tools) == 0 || len(req.Messages) == 0 || req.Messages[len(req.Messages)-1].Role == "tool" {
		return nil
	}
	var choice string
	if json.Unmarshal(req.ToolChoice, &choice) == nil && choice == "none" {
		return nil
	}
	var named struct {
		Function struct {
			Name string `json:"name"`
		} `json:"function"`
	}
	if json.Unmarshal(req.ToolChoice, &named) == nil && named.Function.Name != "" {
		for i := range req.Tools {
			if req.Tools[i].Function.Name == named.Function.Name {
				return &req.Tools[i]
			}
		}
	}
	for i := range req.Tools {
		if req.Tools[i].Type == "function" && req.Tools[i].Function.Name != "" {
			return &req.Tools[i]
		}
	}
	return nil
}

// arguments fills the tool's required parameters (all of them when none is
// required) deterministically: the first enum value, the prompt for a
// string, 1 for a number, true for a boolean.
func (t *demoTool) arguments(prompt string) string {
	var schema struct {
		Properties map[string]struct {
			Type string `json:"type"`
			Enum []any  `json:"enum"`
		} `json:"properties"`
		Required []string `json:"required"`
	}
	_ = json.Unmarshal(t.Function.Parameters, &schema)
	names := schema.Required
	if len(names) == 0 {
		for k := range schema.Properties {
			names = append(names, k)
		}
	}
	args := map[string]any{}
	for _, k := range names {
		p := schema.Properties[k]
		switch {
		case len(p.Enum) > 0:
			args[k] = p.Enum[0]
		case p.Type == "number" || p.Type == "integer":
			args[k] = 1
		case p.Type == "boolean":
			args[k] = true
		default:
			if len(prompt) > 60 {
				prompt = prompt[:60]
			}
			args[k] = prompt
		}
	}
	b, _ := json.Marshal(args) // map keys are sorted: the same every time
	return string(b)
}

// toolCall is the demo's answer when it calls a tool.
type toolCall struct {
	id, name, arguments string
}

func (c *completion) toolResponse() []byte {
	tc := c.tool
	b, _ := json.Marshal(map[string]any{
		"id": c.id, "object": "chat.completion", "created": c.created, "model": c.model,
		"choices": []any{map[string]any{
			"index": 0,
			"message": map[string]any{"role": "assistant", "content": nil, "refusal": nil, "annotations": []string{},
				"tool_calls": []any{map[string]any{"id": tc.id, "type": "function", "function": map[string]string{"name": tc.name, "arguments": tc.arguments}}}},
			"logprobs": nil, "finish_reason": "tool_calls",
		}},
		"usage": c.usage, "service_tier": "default", "system_fingerprint": fingerprint,
	})
	return b
}

// streamToolCall writes the call as OpenAI does: the call's id and name
// with empty arguments, then the arguments in fragments, then the finish.
func (h *Handler) streamToolCall(w http.ResponseWriter, c *completion, includeUsage bool) {
	w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	send := func(data []byte) bool {
		if _, err := fmt.Fprintf(w, "data: %s\n\n", data); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	tc := c.tool
	first := map[string]any{"role": "assistant", "content": nil, "refusal": nil,
		"tool_calls": []any{map[string]any{"index": 0, "id": tc.id, "type": "function", "function": map[string]string{"name": tc.name, "arguments": ""}}}}
	if !send(c.chunk(first, nil)) {
		return
	}
	for _, frag := range fragments(tc.arguments, 3) {
		delta := map[string]any{"tool_calls": []any{map[string]any{"index": 0, "function": map[string]string{"arguments": frag}}}}
		if !send(c.chunk(delta, nil)) {
			return
		}
	}
	finish := "tool_calls"
	if !send(c.chunk(map[string]any{}, &finish)) {
		return
	}
	if includeUsage && !send(c.usageChunk()) {
		return
	}
	send([]byte("[DONE]"))
}

// fragments cuts s into about n pieces at byte boundaries that keep UTF-8 whole.
func fragments(s string, n int) []string {
	var out []string
	size := (len(s) + n - 1) / n
	for len(s) > 0 {
		i := min(size, len(s))
		for i < len(s) && !utf8Start(s[i]) {
			i++
		}
		out = append(out, s[:i])
		s = s[i:]
	}
	return out
}

func utf8Start(b byte) bool { return b&0xC0 != 0x80 }

func toolCallID(name string, promptTokens int) string {
	return fmt.Sprintf("call_demo%08x", uint32(promptTokens*31+len(name)))
}
