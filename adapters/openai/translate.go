package openai

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"portcullis/adapters"
)

// The translators of this file carry chat calls between OpenAI's wire
// format and the gateway's unified types, for calls whose client and
// provider speak different formats. Same-format calls never come here:
// their bytes pass through ChatRequest.Encode.

// Wire types of a chat completions request.
type (
	wireRequest struct {
		Model               string           `json:"model"`
		Messages            []wireMessage    `json:"messages"`
		Tools               []wireTool       `json:"tools,omitempty"`
		ToolChoice          json.RawMessage  `json:"tool_choice,omitempty"`
		ParallelToolCalls   *bool            `json:"parallel_tool_calls,omitempty"`
		MaxCompletionTokens int              `json:"max_completion_tokens,omitempty"`
		MaxTokens           int              `json:"max_tokens,omitempty"`
		Temperature         *float64         `json:"temperature,omitempty"`
		TopP                *float64         `json:"top_p,omitempty"`
		PresencePenalty     *float64         `json:"presence_penalty,omitempty"`
		FrequencyPenalty    *float64         `json:"frequency_penalty,omitempty"`
		Seed                *int64           `json:"seed,omitempty"`
		RandomSeed          *int64           `json:"random_seed,omitempty"`
		Stop                json.RawMessage  `json:"stop,omitempty"`
		N                   int              `json:"n,omitempty"`
		Logprobs            bool             `json:"logprobs,omitempty"`
		TopLogprobs         int              `json:"top_logprobs,omitempty"`
		LogitBias           json.RawMessage  `json:"logit_bias,omitempty"`
		ResponseFormat      *wireFormat      `json:"response_format,omitempty"`
		ReasoningEffort     string           `json:"reasoning_effort,omitempty"`
		User                string           `json:"user,omitempty"`
		Stream              bool             `json:"stream,omitempty"`
		StreamOptions       *wireStreamOpts  `json:"stream_options,omitempty"`
		Modalities          []string         `json:"modalities,omitempty"`
		Audio               *json.RawMessage `json:"audio,omitempty"`
	}
	wireStreamOpts struct {
		IncludeUsage bool `json:"include_usage"`
	}
	wireMessage struct {
		Role       string          `json:"role"`
		Content    json.RawMessage `json:"content"`
		ToolCalls  []wireToolCall  `json:"tool_calls,omitempty"`
		ToolCallID string          `json:"tool_call_id,omitempty"`
	}
	wirePart struct {
		Type     string `json:"type"`
		Text     string `json:"text,omitempty"`
		ImageURL *struct {
			URL    string `json:"url"`
			Detail string `json:"detail,omitempty"`
		} `json:"image_url,omitempty"`
	}
	wireToolCall struct {
		Index    *int   `json:"index,omitempty"`
		ID       string `json:"id,omitempty"`
		Type     string `json:"type,omitempty"`
		Function struct {
			Name      string `json:"name,omitempty"`
			Arguments string `json:"arguments"`
		} `json:"function"`
	}
	wireTool struct {
		Type     string `json:"type"`
		Function struct {
			Name        string          `json:"name"`
			Description string          `json:"description,omitempty"`
			Parameters  json.RawMessage `json:"parameters,omitempty"`
			Strict      bool            `json:"strict,omitempty"`
		} `json:"function"`
	}
	wireFormat struct {
		Type       string `json:"type"`
		JSONSchema *struct {
			Name   string          `json:"name"`
			Schema json.RawMessage `json:"schema,omitempty"`
			Strict bool            `json:"strict,omitempty"`
		} `json:"json_schema,omitempty"`
	}
)

// harmlessFields are request fields a translation may leave out without
// changing what the model is asked: they tune storage, billing or
// latency, not the answer.
var harmlessFields = []string{"store", "metadata", "service_tier", "prediction", "safety_identifier", "prompt_cache_key", "verbosity", "stream_options"}

// meaningFields are request fields no translation carries and whose loss
// would change the answer; a translated request that has them is refused.
var meaningFields = []string{"functions", "function_call", "audio", "web_search_options"}

// DecodeRequest reads a chat completions request into the unified request.
func DecodeRequest(body []byte) (*adapters.Request, error) {
	var w wireRequest
	if err := json.Unmarshal(body, &w); err != nil {
		return nil, &RequestError{Message: "the request body is not a valid chat completions request: " + err.Error()}
	}
	var keys map[string]json.RawMessage
	_ = json.Unmarshal(body, &keys)
	req := &adapters.Request{
		Model:             w.Model,
		ParallelToolCalls: w.ParallelToolCalls,
		MaxTokens:         w.MaxCompletionTokens,
		Temperature:       w.Temperature,
		TopP:              w.TopP,
		PresencePenalty:   w.PresencePenalty,
		FrequencyPenalty:  w.FrequencyPenalty,
		Seed:              w.Seed,
		N:                 w.N,
		Logprobs:          w.Logprobs,
		TopLogprobs:       w.TopLogprobs,
		ReasoningEffort:   w.ReasoningEffort,
		User:              w.User,
		Stream:            w.Stream,
		IncludeUsage:      w.StreamOptions != nil && w.StreamOptions.IncludeUsage,
	}
	if req.MaxTokens == 0 {
		req.MaxTokens = w.MaxTokens
	}
	if len(w.LogitBias) > 0 && string(w.LogitBias) != "null" {
		req.LogitBias = w.LogitBias
	}
	if req.User == "" {
		_ = json.Unmarshal(keys["safety_identifier"], &req.User)
	}
	for _, k := range meaningFields {
		if v, ok := keys[k]; ok && string(v) != "null" {
			return nil, &RequestError{Param: k, Message: fmt.Sprintf("'%s' cannot be translated for this model's provider", k)}
		}
	}
	if slices.ContainsFunc(w.Modalities, func(m string) bool { return m != "text" }) {
		return nil, &RequestError{Param: "modalities", Message: "'modalities': this model's provider answers with text only"}
	}
	for _, k := range harmlessFields {
		if v, ok := keys[k]; ok && string(v) != "null" && k != "stream_options" {
			req.Dropped = append(req.Dropped, k)
		}
	}
	if len(w.Stop) > 0 && string(w.Stop) != "null" {
		if w.Stop[0] == '"' {
			var s string
			_ = json.Unmarshal(w.Stop, &s)
			req.Stop = []string{s}
		} else if err := json.Unmarshal(w.Stop, &req.Stop); err != nil {
			return nil, &RequestError{Param: "stop", Message: "'stop' must be a string or an array of strings"}
		}
	}
	if rf := w.ResponseFormat; rf != nil && rf.Type != "text" && rf.Type != "" {
		req.ResponseFormat = &adapters.ResponseFormat{Type: rf.Type}
		if rf.JSONSchema != nil {
			req.ResponseFormat.Name, req.ResponseFormat.Schema, req.ResponseFormat.Strict = rf.JSONSchema.Name, rf.JSONSchema.Schema, rf.JSONSchema.Strict
		}
	}
	for i, t := range w.Tools {
		if t.Type != "function" {
			return nil, &RequestError{Param: fmt.Sprintf("tools[%d]", i), Message: fmt.Sprintf("tools[%d]: only function tools can be translated for this model's provider", i)}
		}
		req.Tools = append(req.Tools, adapters.Tool{Name: t.Function.Name, Description: t.Function.Description, Parameters: t.Function.Parameters, Strict: t.Function.Strict})
	}
	if len(w.ToolChoice) > 0 && string(w.ToolChoice) != "null" {
		tc, err := decodeToolChoice(w.ToolChoice)
		if err != nil {
			return nil, err
		}
		req.ToolChoice = tc
	}
	for i, m := range w.Messages {
		msg, err := decodeMessage(m, i)
		if err != nil {
			return nil, err
		}
		req.Messages = append(req.Messages, msg)
	}
	return req, nil
}

func decodeToolChoice(raw json.RawMessage) (adapters.ToolChoice, error) {
	if raw[0] == '"' {
		var s string
		_ = json.Unmarshal(raw, &s)
		switch s {
		case "auto", "none", "required":
			return adapters.ToolChoice{Mode: adapters.ToolChoiceMode(s)}, nil
		}
		return adapters.ToolChoice{}, &RequestError{Param: "tool_choice", Message: "'tool_choice' must be \"none\", \"auto\", \"required\" or a named function"}
	}
	var named struct {
		Type     string `json:"type"`
		Function struct {
			Name string `json:"name"`
		} `json:"function"`
	}
	if json.Unmarshal(raw, &named) != nil || named.Function.Name == "" {
		return adapters.ToolChoice{}, &RequestError{Param: "tool_choice", Message: "'tool_choice' of this type cannot be translated for this model's provider"}
	}
	return adapters.ToolChoice{Mode: adapters.ToolChoiceTool, Name: named.Function.Name}, nil
}

func decodeMessage(m wireMessage, i int) (adapters.Message, error) {
	param := fmt.Sprintf("messages[%d]", i)
	msg := adapters.Message{ToolCallID: m.ToolCallID}
	switch m.Role {
	case "system", "developer":
		msg.Role = adapters.RoleSystem
	case "user", "assistant", "tool":
		msg.Role = adapters.Role(m.Role)
	default:
		return msg, &RequestError{Param: param + ".role", Message: fmt.Sprintf("%s.role: %q cannot be translated for this model's provider", param, m.Role)}
	}
	for _, c := range m.ToolCalls {
		msg.ToolCalls = append(msg.ToolCalls, adapters.ToolCall{ID: c.ID, Name: c.Function.Name, Arguments: c.Function.Arguments})
	}
	if len(m.Content) == 0 || string(m.Content) == "null" {
		return msg, nil
	}
	if m.Content[0] == '"' {
		var s string
		_ = json.Unmarshal(m.Content, &s)
		msg.Content = []adapters.Part{{Type: adapters.PartText, Text: s}}
		return msg, nil
	}
	var parts []wirePart
	if err := json.Unmarshal(m.Content, &parts); err != nil {
		return msg, &RequestError{Param: param + ".content", Message: param + ".content must be a string or an array of content parts"}
	}
	for j, p := range parts {
		pp := fmt.Sprintf("%s.content[%d]", param, j)
		switch {
		case p.Type == "text":
			msg.Content = append(msg.Content, adapters.Part{Type: adapters.PartText, Text: p.Text})
		case p.Type == "image_url" && p.ImageURL != nil:
			img, err := decodeImageURL(p.ImageURL.URL, pp)
			if err != nil {
				return msg, err
			}
			img.Detail = p.ImageURL.Detail
			msg.Content = append(msg.Content, adapters.Part{Type: adapters.PartImage, Image: img})
		default:
			return msg, &RequestError{Param: pp, Message: fmt.Sprintf("%s: a %q part cannot be translated for this model's provider", pp, p.Type)}
		}
	}
	return msg, nil
}

// decodeImageURL splits a data: URL into its media type and base64 data,
// and keeps an http(s) URL as it is.
func decodeImageURL(url, param string) (*adapters.Image, error) {
	if rest, ok := strings.CutPrefix(url, "data:"); ok {
		meta, data, ok := strings.Cut(rest, ",")
		mediaType, isBase64 := strings.CutSuffix(meta, ";base64")
		if !ok || !isBase64 || mediaType == "" {
			return nil, &RequestError{Param: param, Message: param + ": a data: image URL must be data:<media type>;base64,<data>"}
		}
		return &adapters.Image{MediaType: mediaType, Data: data}, nil
	}
	if strings.HasPrefix(url, "https://") || strings.HasPrefix(url, "http://") {
		return &adapters.Image{URL: url}, nil
	}
	return nil, &RequestError{Param: param, Message: param + ": an image URL must be http(s) or a data: URL"}
}

// outMessage is a chat message as encoded; Content is a string, parts, or null.
type outMessage struct {
	Role       string         `json:"role"`
	Content    any            `json:"content"`
	ToolCalls  []wireToolCall `json:"tool_calls,omitempty"`
	ToolCallID string         `json:"tool_call_id,omitempty"`
}

// EncodeRequest writes the unified request as a chat completions request
// for model. A stream always asks for usage: the gateway counts every call.
func EncodeRequest(req *adapters.Request, model string) ([]byte, error) {
	return EncodeRequestFor(req, model, DialectOpenAI)
}

// EncodeRequestFor is EncodeRequest for a provider of the given dialect:
// the fields it names differently are renamed, those it does not take
// are dropped, and a request it cannot serve without changing its meaning
// is refused with a RequestError.
func EncodeRequestFor(req *adapters.Request, model string, d Dialect) ([]byte, error) {
	w := wireRequest{
		Model:               model,
		ParallelToolCalls:   req.ParallelToolCalls,
		MaxCompletionTokens: req.MaxTokens,
		Temperature:         req.Temperature,
		TopP:                req.TopP,
		PresencePenalty:     req.PresencePenalty,
		FrequencyPenalty:    req.FrequencyPenalty,
		Seed:                req.Seed,
		Logprobs:            req.Logprobs,
		TopLogprobs:         req.TopLogprobs,
		LogitBias:           req.LogitBias,
		ReasoningEffort:     req.ReasoningEffort,
		User:                req.User,
		Stream:              req.Stream,
	}
	if req.N > 1 {
		w.N = req.N
	}
	if req.TopK != nil {
		req.Dropped = append(req.Dropped, "top_k")
	}
	if req.Stream {
		w.StreamOptions = &wireStreamOpts{IncludeUsage: true}
	}
	if len(req.Stop) > 0 {
		w.Stop, _ = json.Marshal(req.Stop)
	}
	if rf := req.ResponseFormat; rf != nil {
		w.ResponseFormat = &wireFormat{Type: rf.Type}
		if rf.Type == "json_schema" {
			name := rf.Name
			if name == "" {
				name = "output"
			}
			w.ResponseFormat.JSONSchema = &struct {
				Name   string          `json:"name"`
				Schema json.RawMessage `json:"schema,omitempty"`
				Strict bool            `json:"strict,omitempty"`
			}{name, rf.Schema, rf.Strict}
		}
	}
	for _, t := range req.Tools {
		var wt wireTool
		wt.Type = "function"
		wt.Function.Name, wt.Function.Description, wt.Function.Parameters, wt.Function.Strict = t.Name, t.Description, t.Parameters, t.Strict
		w.Tools = append(w.Tools, wt)
	}
	if len(w.Tools) > 0 {
		switch req.ToolChoice.Mode {
		case adapters.ToolChoiceAuto, adapters.ToolChoiceNone, adapters.ToolChoiceRequired:
			w.ToolChoice, _ = json.Marshal(string(req.ToolChoice.Mode))
		case adapters.ToolChoiceTool:
			w.ToolChoice, _ = json.Marshal(map[string]any{"type": "function", "function": map[string]string{"name": req.ToolChoice.Name}})
		}
	} else {
		w.ParallelToolCalls = nil
	}
	if err := d.adapt(req, &w); err != nil {
		return nil, err
	}
	messages := make([]outMessage, 0, len(req.Messages))
	for i, m := range req.Messages {
		out, err := encodeMessage(req, m, i, d)
		if err != nil {
			return nil, err
		}
		messages = append(messages, out)
	}
	type encoded struct {
		wireRequest
		Messages []outMessage `json:"messages"`
	}
	return json.Marshal(encoded{w, messages})
}

func encodeMessage(req *adapters.Request, m adapters.Message, i int, d Dialect) (outMessage, error) {
	param := fmt.Sprintf("messages[%d]", i)
	out := outMessage{Role: string(m.Role)}
	if m.ToolCallID != "" {
		out.ToolCallID = d.toolCallID(m.ToolCallID)
	}
	onlyText := !slices.ContainsFunc(m.Content, func(p adapters.Part) bool { return p.Type != adapters.PartText })
	switch {
	case len(m.Content) == 0:
		if m.Role != adapters.RoleAssistant {
			out.Content = ""
		}
	case onlyText:
		var b strings.Builder
		for _, p := range m.Content {
			b.WriteString(p.Text)
		}
		out.Content = b.String()
	case m.Role != adapters.RoleUser:
		return out, &adapters.RequestError{Param: param, Message: param + ": images can be sent to this model's provider only in user messages"}
	default:
		parts := make([]wirePart, 0, len(m.Content))
		for _, p := range m.Content {
			wp := wirePart{Type: "text", Text: p.Text}
			if p.Type == adapters.PartImage {
				url := p.Image.URL
				if url == "" {
					url = "data:" + p.Image.MediaType + ";base64," + p.Image.Data
				}
				wp = wirePart{Type: "image_url", ImageURL: &struct {
					URL    string `json:"url"`
					Detail string `json:"detail,omitempty"`
				}{url, p.Image.Detail}}
			}
			parts = append(parts, wp)
		}
		out.Content = parts
	}
	if m.IsError && !slices.Contains(req.Dropped, "is_error") {
		req.Dropped = append(req.Dropped, "is_error")
	}
	for _, c := range m.ToolCalls {
		var tc wireToolCall
		tc.ID, tc.Type = d.toolCallID(c.ID), "function"
		tc.Function.Name, tc.Function.Arguments = c.Name, c.Arguments
		out.ToolCalls = append(out.ToolCalls, tc)
	}
	return out, nil
}

// DecodeResponse reads a chat completion into the unified response; only
// the first choice counts.
func DecodeResponse(body []byte) (*adapters.Response, error) {
	var w struct {
		ID      string `json:"id"`
		Created int64  `json:"created"`
		Model   string `json:"model"`
		Choices []struct {
			Message struct {
				Content          *string        `json:"content"`
				ReasoningContent string         `json:"reasoning_content"`
				Reasoning        string         `json:"reasoning"` // Groq's and Ollama's name
				ToolCalls        []wireToolCall `json:"tool_calls"`
			} `json:"message"`
			FinishReason string `json:"finish_reason"`
		} `json:"choices"`
		Usage *wireUsage `json:"usage"`
		wireExtra
	}
	if err := json.Unmarshal(body, &w); err != nil {
		return nil, err
	}
	resp := &adapters.Response{ID: w.ID, Created: w.Created, Model: w.Model, Extra: w.extra()}
	if w.Usage != nil {
		resp.Usage = w.Usage.usage()
	}
	if len(w.Choices) == 0 {
		return resp, nil
	}
	c := w.Choices[0]
	if c.Message.Content != nil {
		resp.Text = *c.Message.Content
	}
	resp.Reasoning = c.Message.ReasoningContent
	if resp.Reasoning == "" {
		resp.Reasoning = c.Message.Reasoning
	}
	for _, tc := range c.Message.ToolCalls {
		resp.ToolCalls = append(resp.ToolCalls, adapters.ToolCall{ID: tc.ID, Name: tc.Function.Name, Arguments: tc.Function.Arguments})
	}
	resp.Finish = adapters.FinishReason(finishReason(c.FinishReason))
	return resp, nil
}

// outUsage is CompletionUsage as the gateway writes it.
type outUsage struct {
	PromptTokens        int `json:"prompt_tokens"`
	CompletionTokens    int `json:"completion_tokens"`
	TotalTokens         int `json:"total_tokens"`
	PromptTokensDetails struct {
		CachedTokens int `json:"cached_tokens"`
	} `json:"prompt_tokens_details"`
	CompletionTokensDetails struct {
		ReasoningTokens int `json:"reasoning_tokens"`
	} `json:"completion_tokens_details"`
}

func outUsageOf(u adapters.Usage) *outUsage {
	o := &outUsage{PromptTokens: u.PromptTokens, CompletionTokens: u.CompletionTokens, TotalTokens: u.TotalTokens}
	if o.TotalTokens == 0 {
		o.TotalTokens = u.PromptTokens + u.CompletionTokens
	}
	o.PromptTokensDetails.CachedTokens = u.CachedTokens
	o.CompletionTokensDetails.ReasoningTokens = u.ReasoningTokens
	return o
}

// completionID gives an upstream id the prefix OpenAI clients expect.
func completionID(id string) string {
	if strings.HasPrefix(id, "chatcmpl-") {
		return id
	}
	return "chatcmpl-" + id
}

// EncodeResponse writes the unified response as a chat completion.
func EncodeResponse(resp *adapters.Response, model string) []byte {
	type message struct {
		Role             string         `json:"role"`
		Content          *string        `json:"content"`
		ReasoningContent string         `json:"reasoning_content,omitempty"`
		ToolCalls        []wireToolCall `json:"tool_calls,omitempty"`
		Refusal          *string        `json:"refusal"`
	}
	msg := message{Role: "assistant", ReasoningContent: resp.Reasoning}
	if resp.Text != "" || len(resp.ToolCalls) == 0 {
		msg.Content = &resp.Text
	}
	for _, c := range resp.ToolCalls {
		var tc wireToolCall
		tc.ID, tc.Type = c.ID, "function"
		tc.Function.Name, tc.Function.Arguments = c.Name, c.Arguments
		msg.ToolCalls = append(msg.ToolCalls, tc)
	}
	created := resp.Created
	if created == 0 {
		created = time.Now().Unix()
	}
	finish := resp.Finish
	if finish == "" {
		finish = adapters.FinishStop
	}
	b, _ := json.Marshal(struct {
		ID      string `json:"id"`
		Object  string `json:"object"`
		Created int64  `json:"created"`
		Model   string `json:"model"`
		Choices []struct {
			Index        int                   `json:"index"`
			Message      message               `json:"message"`
			Logprobs     *string               `json:"logprobs"`
			FinishReason adapters.FinishReason `json:"finish_reason"`
		} `json:"choices"`
		Usage *outUsage `json:"usage"`
	}{
		ID: completionID(resp.ID), Object: "chat.completion", Created: created, Model: model,
		Choices: []struct {
			Index        int                   `json:"index"`
			Message      message               `json:"message"`
			Logprobs     *string               `json:"logprobs"`
			FinishReason adapters.FinishReason `json:"finish_reason"`
		}{{Message: msg, FinishReason: finish}},
		Usage: outUsageOf(resp.Usage),
	})
	return appendExtra(b, resp.Extra)
}
