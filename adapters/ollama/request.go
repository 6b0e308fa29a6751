package ollama

import (
	"encoding/json"
	"fmt"

	"portcullis/adapters"
)

// Wire types of an Ollama chat request, and of the message it shares
// with the answer.
type (
	wireRequest struct {
		Model    string          `json:"model"`
		Messages []wireMessage   `json:"messages"`
		Tools    []wireTool      `json:"tools,omitempty"`
		Format   json.RawMessage `json:"format,omitempty"`
		Options  *wireOptions    `json:"options,omitempty"`
		Think    any             `json:"think,omitempty"`
		// Stream is always sent: Ollama streams unless told not to.
		Stream bool `json:"stream"`
	}
	wireMessage struct {
		Role       string         `json:"role"`
		Content    string         `json:"content"`
		Thinking   string         `json:"thinking,omitempty"`
		Images     []string       `json:"images,omitempty"`
		ToolCalls  []wireToolCall `json:"tool_calls,omitempty"`
		ToolName   string         `json:"tool_name,omitempty"`
		ToolCallID string         `json:"tool_call_id,omitempty"`
	}
	wireToolCall struct {
		ID       string `json:"id,omitempty"`
		Function struct {
			Index     *int            `json:"index,omitempty"`
			Name      string          `json:"name"`
			Arguments json.RawMessage `json:"arguments"`
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
	wireOptions struct {
		NumPredict       int      `json:"num_predict,omitempty"`
		Temperature      *float64 `json:"temperature,omitempty"`
		TopP             *float64 `json:"top_p,omitempty"`
		TopK             *int     `json:"top_k,omitempty"`
		Stop             []string `json:"stop,omitempty"`
		Seed             *int64   `json:"seed,omitempty"`
		PresencePenalty  *float64 `json:"presence_penalty,omitempty"`
		FrequencyPenalty *float64 `json:"frequency_penalty,omitempty"`
	}
)

// EncodeRequest writes the unified request as an Ollama chat request for
// model. Ollama has no tool choice: "none" leaves the tools out, and a
// required or named tool is refused, since Ollama cannot be made to call
// one. Image URLs are refused too (Ollama takes only inline images), and
// so are several choices. Logit bias, log probabilities, user and
// parallel_tool_calls are dropped into req.Dropped.
func EncodeRequest(req *adapters.Request, model string) ([]byte, error) {
	if req.N > 1 {
		return nil, &adapters.RequestError{Param: "n", Message: "n: Ollama answers with one choice; send n=1 or leave it out"}
	}
	switch req.ToolChoice.Mode {
	case adapters.ToolChoiceRequired, adapters.ToolChoiceTool:
		if len(req.Tools) > 0 {
			return nil, &adapters.RequestError{Param: "tool_choice", Message: "tool_choice: Ollama cannot be made to call a tool; send \"auto\" or leave it out"}
		}
	}
	drop := func(field string, present bool) {
		if present {
			req.Dropped = append(req.Dropped, field)
		}
	}
	drop("logit_bias", req.LogitBias != nil)
	drop("logprobs", req.Logprobs || req.TopLogprobs > 0)
	drop("user", req.User != "")
	drop("parallel_tool_calls", req.ParallelToolCalls != nil)
	w := wireRequest{Model: model, Stream: req.Stream}
	opts := wireOptions{
		NumPredict:       req.MaxTokens,
		Temperature:      req.Temperature,
		TopP:             req.TopP,
		TopK:             req.TopK,
		Stop:             req.Stop,
		Seed:             req.Seed,
		PresencePenalty:  req.PresencePenalty,
		FrequencyPenalty: req.FrequencyPenalty,
	}
	if b, _ := json.Marshal(opts); string(b) != "{}" {
		w.Options = &opts
	}
	if rf := req.ResponseFormat; rf != nil {
		w.Format = json.RawMessage(`"json"`)
		if rf.Type == "json_schema" && len(rf.Schema) > 0 {
			w.Format = rf.Schema
		}
	}
	switch req.ReasoningEffort {
	case "":
	case "none":
		w.Think = false
	case "minimal", "low":
		w.Think = "low"
	case "medium", "high":
		w.Think = req.ReasoningEffort
	default:
		w.Think = true
	}
	names := req.ToolNames()
	for i, m := range req.Messages {
		param := fmt.Sprintf("messages[%d]", i)
		msg := wireMessage{Role: string(m.Role)}
		for j, p := range m.Content {
			switch p.Type {
			case adapters.PartText:
				msg.Content += p.Text
			case adapters.PartImage:
				pp := fmt.Sprintf("%s.content[%d]", param, j)
				if m.Role != adapters.RoleUser {
					return nil, &adapters.RequestError{Param: pp, Message: pp + ": Ollama takes images only in user messages"}
				}
				if p.Image.URL != "" {
					return nil, &adapters.RequestError{Param: pp + ".image_url", Message: pp + ".image_url: Ollama does not fetch image URLs; send the image inline as a data: URL"}
				}
				msg.Images = append(msg.Images, p.Image.Data)
			}
		}
		switch m.Role {
		case adapters.RoleSystem, adapters.RoleUser:
		case adapters.RoleAssistant:
			for j, c := range m.ToolCalls {
				args, err := adapters.ArgumentsObject(c, fmt.Sprintf("%s.tool_calls[%d]", param, j))
				if err != nil {
					return nil, err
				}
				var tc wireToolCall
				index := j
				tc.ID, tc.Function.Index, tc.Function.Name, tc.Function.Arguments = c.ID, &index, c.Name, args
				msg.ToolCalls = append(msg.ToolCalls, tc)
			}
		case adapters.RoleTool:
			name, ok := names[m.ToolCallID]
			if !ok {
				return nil, &adapters.RequestError{Param: param + ".tool_call_id",
					Message: param + ".tool_call_id: Ollama needs the name of the tool whose result this is; send the assistant message that made call " + m.ToolCallID + " before it"}
			}
			msg.ToolName, msg.ToolCallID = name, m.ToolCallID
		default:
			return nil, &adapters.RequestError{Param: param + ".role", Message: fmt.Sprintf("%s.role: %q cannot be translated for Ollama", param, m.Role)}
		}
		w.Messages = append(w.Messages, msg)
	}
	if len(w.Messages) == 0 {
		return nil, &adapters.RequestError{Param: "messages", Message: "messages: Ollama needs at least one message"}
	}
	if req.ToolChoice.Mode != adapters.ToolChoiceNone {
		for _, t := range req.Tools {
			drop("tools[].function.strict", t.Strict)
			schema := t.Parameters
			if string(schema) == "null" {
				schema = nil
			}
			w.Tools = append(w.Tools, wireTool{Type: "function", Function: wireFunction{Name: t.Name, Description: t.Description, Parameters: schema}})
		}
	}
	return json.Marshal(w)
}
