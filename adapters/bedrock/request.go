package bedrock

import (
	"encoding/json"
	"fmt"
	"strings"

	"portcullis/adapters"
)

// Wire types of a Converse request; content blocks are single-key unions.
type (
	wireRequest struct {
		Messages                     []wireMessage     `json:"messages"`
		System                       []wireBlock       `json:"system,omitempty"`
		InferenceConfig              *wireInference    `json:"inferenceConfig,omitempty"`
		ToolConfig                   *wireToolConfig   `json:"toolConfig,omitempty"`
		AdditionalModelRequestFields map[string]any    `json:"additionalModelRequestFields,omitempty"`
		OutputConfig                 *wireOutputConfig `json:"outputConfig,omitempty"`
	}
	wireMessage struct {
		Role    string      `json:"role"`
		Content []wireBlock `json:"content"`
	}
	wireBlock struct {
		Text       *string         `json:"text,omitempty"`
		Image      *wireImage      `json:"image,omitempty"`
		ToolUse    *wireToolUse    `json:"toolUse,omitempty"`
		ToolResult *wireToolResult `json:"toolResult,omitempty"`
		JSON       json.RawMessage `json:"json,omitempty"`
	}
	wireImage struct {
		Format string `json:"format"`
		Source struct {
			Bytes string `json:"bytes"`
		} `json:"source"`
	}
	wireToolUse struct {
		ToolUseID string          `json:"toolUseId"`
		Name      string          `json:"name"`
		Input     json.RawMessage `json:"input"`
	}
	wireToolResult struct {
		ToolUseID string      `json:"toolUseId"`
		Content   []wireBlock `json:"content"`
		Status    string      `json:"status"`
	}
	wireInference struct {
		MaxTokens     int      `json:"maxTokens,omitempty"`
		Temperature   *float64 `json:"temperature,omitempty"`
		TopP          *float64 `json:"topP,omitempty"`
		StopSequences []string `json:"stopSequences,omitempty"`
	}
	wireToolConfig struct {
		Tools      []wireTool `json:"tools"`
		ToolChoice any        `json:"toolChoice,omitempty"`
	}
	wireTool struct {
		ToolSpec struct {
			Name        string `json:"name"`
			Description string `json:"description,omitempty"`
			InputSchema struct {
				JSON json.RawMessage `json:"json"`
			} `json:"inputSchema"`
			Strict bool `json:"strict,omitempty"`
		} `json:"toolSpec"`
	}
	wireOutputConfig struct {
		TextFormat struct {
			Type      string `json:"type"`
			Structure struct {
				JSONSchema struct {
					// Schema is the JSON Schema as a JSON-encoded string.
					Schema string `json:"schema"`
					Name   string `json:"name,omitempty"`
				} `json:"jsonSchema"`
			} `json:"structure"`
		} `json:"textFormat"`
	}
)

// imageFormats are the image media types Converse takes, by its format name.
var imageFormats = map[string]string{"image/png": "png", "image/jpeg": "jpeg", "image/gif": "gif", "image/webp": "webp"}

// EncodeRequest writes the unified request as a Converse request (the
// model goes in the URL, see Path). Converse wants roles that alternate,
// so consecutive turns of one role (tool results and the user's words
// after them, say) are merged into one message. It refuses what Converse
// cannot carry without changing the request's meaning (several choices,
// JSON mode without a schema, image URLs, which Bedrock does not fetch)
// and drops, into req.Dropped, what it can leave out harmlessly (seed,
// penalties, logit bias, log probabilities, reasoning effort, user,
// parallel_tool_calls).
func EncodeRequest(req *adapters.Request, model string) ([]byte, error) {
	if req.N > 1 {
		return nil, &adapters.RequestError{Param: "n", Message: "n: Bedrock answers with one choice; send n=1 or leave it out"}
	}
	drop := func(field string, present bool) {
		if present {
			req.Dropped = append(req.Dropped, field)
		}
	}
	drop("seed", req.Seed != nil)
	drop("presence_penalty", req.PresencePenalty != nil)
	drop("frequency_penalty", req.FrequencyPenalty != nil)
	drop("logit_bias", req.LogitBias != nil)
	drop("logprobs", req.Logprobs || req.TopLogprobs > 0)
	drop("reasoning_effort", req.ReasoningEffort != "")
	drop("user", req.User != "")
	drop("parallel_tool_calls", req.ParallelToolCalls != nil)

	w := wireRequest{}
	inf := wireInference{MaxTokens: req.MaxTokens, Temperature: req.Temperature, TopP: req.TopP, StopSequences: req.Stop}
	if t := inf.Temperature; t != nil && *t > 1 {
		one := 1.0
		inf.Temperature = &one // Converse's range is 0 to 1
	}
	if inf.MaxTokens != 0 || inf.Temperature != nil || inf.TopP != nil || len(inf.StopSequences) > 0 {
		w.InferenceConfig = &inf
	}
	if req.TopK != nil {
		w.AdditionalModelRequestFields = map[string]any{"top_k": *req.TopK}
	}
	if rf := req.ResponseFormat; rf != nil {
		if rf.Type == "json_object" {
			return nil, &adapters.RequestError{Param: "response_format", Message: "response_format: Bedrock has no JSON mode without a schema; use {\"type\": \"json_schema\", ...}"}
		}
		oc := &wireOutputConfig{}
		oc.TextFormat.Type = "json_schema"
		oc.TextFormat.Structure.JSONSchema.Schema, oc.TextFormat.Structure.JSONSchema.Name = string(rf.Schema), rf.Name
		w.OutputConfig = oc
	}
	history := false
	for i, m := range req.Messages {
		param := fmt.Sprintf("messages[%d]", i)
		var blocks []wireBlock
		role := "user"
		switch m.Role {
		case adapters.RoleSystem:
			for _, p := range m.Content {
				if p.Type != adapters.PartText {
					return nil, &adapters.RequestError{Param: param, Message: param + ": a system prompt for Bedrock can hold only text"}
				}
				w.System = append(w.System, textBlock(p.Text))
			}
			continue
		case adapters.RoleTool:
			history = true
			for _, p := range m.Content {
				if p.Type != adapters.PartText {
					return nil, &adapters.RequestError{Param: param + ".content", Message: param + ".content: a tool result for Bedrock can hold only text"}
				}
			}
			result := &wireToolResult{ToolUseID: m.ToolCallID, Status: "success"}
			if m.IsError {
				result.Status = "error"
			}
			if text := m.Text(); strings.HasPrefix(strings.TrimSpace(text), "{") && json.Valid([]byte(text)) {
				result.Content = []wireBlock{{JSON: json.RawMessage(strings.TrimSpace(text))}}
			} else {
				result.Content = []wireBlock{textBlock(text)}
			}
			blocks = []wireBlock{{ToolResult: result}}
		case adapters.RoleUser, adapters.RoleAssistant:
			role = string(m.Role)
			for j, p := range m.Content {
				switch p.Type {
				case adapters.PartText:
					if p.Text != "" {
						blocks = append(blocks, textBlock(p.Text))
					}
				case adapters.PartImage:
					pp := fmt.Sprintf("%s.content[%d]", param, j)
					format, ok := imageFormats[p.Image.MediaType]
					if p.Image.URL != "" || !ok {
						return nil, &adapters.RequestError{Param: pp + ".image_url", Message: pp + ".image_url: Bedrock takes inline PNG, JPEG, GIF or WebP images only; send a data: URL"}
					}
					img := &wireImage{Format: format}
					img.Source.Bytes = p.Image.Data
					blocks = append(blocks, wireBlock{Image: img})
				}
			}
			for j, c := range m.ToolCalls {
				history = true
				args, err := adapters.ArgumentsObject(c, fmt.Sprintf("%s.tool_calls[%d]", param, j))
				if err != nil {
					return nil, err
				}
				blocks = append(blocks, wireBlock{ToolUse: &wireToolUse{ToolUseID: c.ID, Name: c.Name, Input: args}})
			}
		default:
			return nil, &adapters.RequestError{Param: param + ".role", Message: fmt.Sprintf("%s.role: %q cannot be translated for Bedrock", param, m.Role)}
		}
		if len(blocks) == 0 {
			continue // Converse refuses empty turns
		}
		if n := len(w.Messages); n > 0 && w.Messages[n-1].Role == role {
			w.Messages[n-1].Content = append(w.Messages[n-1].Content, blocks...)
			continue
		}
		w.Messages = append(w.Messages, wireMessage{Role: role, Content: blocks})
	}
	if len(w.Messages) == 0 {
		return nil, &adapters.RequestError{Param: "messages", Message: "messages: Bedrock needs at least one user or assistant message besides the system prompt"}
	}
	w.ToolConfig = toolConfig(req, history)
	return json.Marshal(w)
}

func textBlock(s string) wireBlock { return wireBlock{Text: &s} }

// toolConfig is the tools and tool choice. Converse has no "none": the
// tools are left out, unless the history holds tool blocks, which Bedrock
// refuses without a toolConfig; then they go with auto.
func toolConfig(req *adapters.Request, history bool) *wireToolConfig {
	if len(req.Tools) == 0 || req.ToolChoice.Mode == adapters.ToolChoiceNone && !history {
		return nil
	}
	tc := &wireToolConfig{}
	for _, t := range req.Tools {
		var wt wireTool
		wt.ToolSpec.Name, wt.ToolSpec.Description, wt.ToolSpec.Strict = t.Name, t.Description, t.Strict
		wt.ToolSpec.InputSchema.JSON = t.Parameters
		if len(t.Parameters) == 0 || string(t.Parameters) == "null" {
			wt.ToolSpec.InputSchema.JSON = json.RawMessage(`{"type":"object","properties":{}}`)
		}
		tc.Tools = append(tc.Tools, wt)
	}
	switch req.ToolChoice.Mode {
	case adapters.ToolChoiceAuto:
		tc.ToolChoice = map[string]any{"auto": struct{}{}}
	case adapters.ToolChoiceRequired:
		tc.ToolChoice = map[string]any{"any": struct{}{}}
	case adapters.ToolChoiceTool:
		tc.ToolChoice = map[string]any{"tool": map[string]string{"name": req.ToolChoice.Name}}
	}
	return tc
}
