package cohere

import (
	"encoding/json"
	"fmt"

	"portcullis/adapters"
)

// Wire types of a v2 chat request.
type (
	wireRequest struct {
		Model            string              `json:"model"`
		Messages         []wireMessage       `json:"messages"`
		Tools            []wireTool          `json:"tools,omitempty"`
		StrictTools      bool                `json:"strict_tools,omitempty"`
		ToolChoice       string              `json:"tool_choice,omitempty"`
		MaxTokens        int                 `json:"max_tokens,omitempty"`
		Temperature      *float64            `json:"temperature,omitempty"`
		P                *float64            `json:"p,omitempty"`
		K                *int                `json:"k,omitempty"`
		Seed             *int64              `json:"seed,omitempty"`
		StopSequences    []string            `json:"stop_sequences,omitempty"`
		FrequencyPenalty *float64            `json:"frequency_penalty,omitempty"`
		PresencePenalty  *float64            `json:"presence_penalty,omitempty"`
		ResponseFormat   *wireResponseFormat `json:"response_format,omitempty"`
		Stream           bool                `json:"stream"`
	}
	wireMessage struct {
		Role       string         `json:"role"`
		Content    any            `json:"content,omitempty"`
		ToolCalls  []wireToolCall `json:"tool_calls,omitempty"`
		ToolCallID string         `json:"tool_call_id,omitempty"`
		ToolPlan   string         `json:"tool_plan,omitempty"`
	}
	wireToolCall struct {
		ID       string `json:"id,omitempty"`
		Type     string `json:"type,omitempty"`
		Function struct {
			Name      string `json:"name,omitempty"`
			Arguments string `json:"arguments"`
		} `json:"function"`
	}
	wireTool struct {
		Type     string       `json:"type"`
		Function wireFunction `json:"function"`
	}
	wireFunction struct {
		Name        string          `json:"name"`
		Description string          `json:"description,omitempty"`
		Parameters  json.RawMessage `json:"parameters,omitempty"`
	}
	wireResponseFormat struct {
		Type       string          `json:"type"`
		JSONSchema json.RawMessage `json:"json_schema,omitempty"`
	}
	textPart struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	imagePart struct {
		Type     string `json:"type"`
		ImageURL struct {
			URL    string `json:"url"`
			Detail string `json:"detail,omitempty"`
		} `json:"image_url"`
	}
	documentPart struct {
		Type     string `json:"type"`
		Document struct {
			Data string `json:"data"`
		} `json:"document"`
	}
)

// EncodeRequest writes the unified request as a v2 chat request for
// model. It refuses what Cohere cannot do without changing the request's
// meaning (several choices, images in a system prompt or a tool result)
// and drops, into req.Dropped, what it can leave out harmlessly (logit
// bias, log probabilities, reasoning effort, user, parallel_tool_calls). A
// forced named tool is sent as that one tool, required.
func EncodeRequest(req *adapters.Request, model string) ([]byte, error) {
	if req.N > 1 {
		return nil, &adapters.RequestError{Param: "n", Message: "n: Cohere answers with one choice; send n=1 or leave it out"}
	}
	drop := func(field string, present bool) {
		if present {
			req.Dropped = append(req.Dropped, field)
		}
	}
	drop("logit_bias", req.LogitBias != nil)
	drop("logprobs", req.Logprobs || req.TopLogprobs > 0)
	drop("reasoning_effort", req.ReasoningEffort != "")
	drop("user", req.User != "")
	drop("parallel_tool_calls", req.ParallelToolCalls != nil)
	w := wireRequest{
		Model:            model,
		MaxTokens:        req.MaxTokens,
		Temperature:      req.Temperature,
		P:                req.TopP,
		K:                req.TopK,
		Seed:             req.Seed,
		StopSequences:    req.Stop,
		FrequencyPenalty: req.FrequencyPenalty,
		PresencePenalty:  req.PresencePenalty,
		Stream:           req.Stream,
	}
	if rf := req.ResponseFormat; rf != nil {
		w.ResponseFormat = &wireResponseFormat{Type: "json_object"}
		if rf.Type == "json_schema" {
			w.ResponseFormat.JSONSchema = rf.Schema
		}
	}
	for i, m := range req.Messages {
		param := fmt.Sprintf("messages[%d]", i)
		msg := wireMessage{Role: string(m.Role)}
		switch m.Role {
		case adapters.RoleSystem, adapters.RoleTool:
			for _, p := range m.Content {
				if p.Type != adapters.PartText {
					return nil, &adapters.RequestError{Param: param + ".content", Message: param + ".content: a " + string(m.Role) + " message for Cohere can hold only text"}
				}
			}
			if m.Role == adapters.RoleSystem {
				msg.Content = m.Text()
				break
			}
			// Cohere reads tool results best as documents.
			doc := documentPart{Type: "document"}
			doc.Document.Data = m.Text()
			msg.ToolCallID, msg.Content = m.ToolCallID, []documentPart{doc}
		case adapters.RoleUser, adapters.RoleAssistant:
			parts := make([]any, 0, len(m.Content))
			for _, p := range m.Content {
				switch p.Type {
				case adapters.PartText:
					if p.Text != "" {
						parts = append(parts, textPart{Type: "text", Text: p.Text})
					}
				case adapters.PartImage:
					img := imagePart{Type: "image_url"}
					img.ImageURL.URL, img.ImageURL.Detail = p.Image.URL, p.Image.Detail
					if p.Image.URL == "" {
						img.ImageURL.URL = "data:" + p.Image.MediaType + ";base64," + p.Image.Data
					}
					parts = append(parts, img)
				}
			}
			if m.Role == adapters.RoleAssistant && len(m.ToolCalls) > 0 {
				// Text before a call is Cohere's tool plan; Cohere wants
				// no content beside tool calls.
				msg.ToolPlan = m.Text()
				parts = nil
			}
			if len(parts) > 0 {
				msg.Content = parts
			}
			for j, c := range m.ToolCalls {
				if _, err := adapters.ArgumentsObject(c, fmt.Sprintf("%s.tool_calls[%d]", param, j)); err != nil {
					return nil, err
				}
				tc := wireToolCall{ID: c.ID, Type: "function"}
				tc.Function.Name, tc.Function.Arguments = c.Name, c.Arguments
				if tc.Function.Arguments == "" {
					tc.Function.Arguments = "{}"
				}
				msg.ToolCalls = append(msg.ToolCalls, tc)
			}
			if msg.Content == nil && len(msg.ToolCalls) == 0 {
				continue // Cohere refuses empty turns
			}
		default:
			return nil, &adapters.RequestError{Param: param + ".role", Message: fmt.Sprintf("%s.role: %q cannot be translated for Cohere", param, m.Role)}
		}
		w.Messages = append(w.Messages, msg)
	}
	if len(w.Messages) == 0 {
		return nil, &adapters.RequestError{Param: "messages", Message: "messages: Cohere needs at least one message"}
	}
	tools := req.Tools
	switch req.ToolChoice.Mode {
	case adapters.ToolChoiceNone:
		w.ToolChoice = "NONE"
	case adapters.ToolChoiceRequired:
		w.ToolChoice = "REQUIRED"
	case adapters.ToolChoiceTool:
		// Cohere cannot name the tool to call: offer only that one, required.
		tools = nil
		for _, t := range req.Tools {
			if t.Name == req.ToolChoice.Name {
				tools = append(tools, t)
			}
		}
		if len(tools) == 0 {
			return nil, &adapters.RequestError{Param: "tool_choice", Message: "tool_choice: names " + req.ToolChoice.Name + ", which is not among the tools offered"}
		}
		w.ToolChoice = "REQUIRED"
	}
	for _, t := range tools {
		schema := t.Parameters
		if string(schema) == "null" {
			schema = nil
		}
		w.Tools = append(w.Tools, wireTool{Type: "function", Function: wireFunction{Name: t.Name, Description: t.Description, Parameters: schema}})
		w.StrictTools = w.StrictTools || t.Strict
	}
	if len(w.Tools) == 0 {
		w.ToolChoice = ""
	}
	return json.Marshal(w)
}
