package anthropic

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"

	"portcullis/adapters"
)

// MessagesRequest is what the gateway reads from a Messages request that
// a client sent to POST /v1/messages. The body is kept and, when the
// provider is Anthropic too, forwarded byte for byte except for the fields
// Encode rewrites.
type MessagesRequest struct {
	Model     string
	Stream    bool
	MaxTokens int
	// Tools are the names of the tools offered.
	Tools []string
	// ToolChoice is "auto", "none", "required" (Anthropic's "any") or the
	// name of the tool the model must call (then ToolChoiceNamed is set),
	// in the words the policy sees for every API.
	ToolChoice      string
	ToolChoiceNamed bool

	obj    *adapters.Object
	tools  []rawTool
	set    []adapters.Field
	remove []string
}

type rawTool struct {
	name string
	raw  json.RawMessage
}

// ParseMessagesRequest reads a Messages request body, refusing what
// Anthropic itself would refuse before the model sees it.
func ParseMessagesRequest(body []byte) (*MessagesRequest, error) {
	return parseMessagesRequest(body, true)
}

// ParseCountTokensRequest reads a body of POST /v1/messages/count_tokens:
// a Messages request without max_tokens, which it does not need.
func ParseCountTokensRequest(body []byte) (*MessagesRequest, error) {
	return parseMessagesRequest(body, false)
}

func parseMessagesRequest(body []byte, needMaxTokens bool) (*MessagesRequest, error) {
	obj, err := adapters.ParseObject(body)
	if err != nil {
		return nil, &adapters.RequestError{Message: "the request body must be a JSON object: " + err.Error()}
	}
	r := &MessagesRequest{obj: obj}
	if err := json.Unmarshal(obj.Get("model"), &r.Model); err != nil || r.Model == "" {
		return nil, &adapters.RequestError{Param: "model", Message: "model: a non-empty string naming the model is required"}
	}
	var msgs []json.RawMessage
	if err := json.Unmarshal(obj.Get("messages"), &msgs); err != nil || len(msgs) == 0 {
		return nil, &adapters.RequestError{Param: "messages", Message: "messages: an array of at least one message is required"}
	}
	if raw := obj.Get("max_tokens"); raw != nil {
		n, err := strconv.Atoi(string(raw))
		if err != nil || n < 1 {
			return nil, &adapters.RequestError{Param: "max_tokens", Message: "max_tokens: must be a positive whole number"}
		}
		r.MaxTokens = n
	} else if needMaxTokens {
		return nil, &adapters.RequestError{Param: "max_tokens", Message: "max_tokens: Field required"}
	}
	if raw := obj.Get("stream"); raw != nil {
		if err := json.Unmarshal(raw, &r.Stream); err != nil {
			return nil, &adapters.RequestError{Param: "stream", Message: "stream: must be true or false"}
		}
	}
	if raw := obj.Get("tools"); raw != nil {
		var elems []json.RawMessage
		if err := json.Unmarshal(raw, &elems); err != nil {
			return nil, &adapters.RequestError{Param: "tools", Message: "tools: must be an array of tool objects"}
		}
		for _, e := range elems {
			var t struct {
				Type string `json:"type"`
				Name string `json:"name"`
			}
			if err := json.Unmarshal(e, &t); err != nil {
				return nil, &adapters.RequestError{Param: "tools", Message: "tools: must be an array of tool objects"}
			}
			// Every tool has a name for the policy: a server tool
			// without one goes by its type, so none slips past an allowlist.
			name := t.Name
			if name == "" {
				name = t.Type
			}
			r.tools = append(r.tools, rawTool{name: name, raw: e})
			r.Tools = append(r.Tools, name)
		}
	}
	if raw := obj.Get("tool_choice"); raw != nil {
		var tc wireToolChoice
		if err := json.Unmarshal(raw, &tc); err != nil {
			return nil, &adapters.RequestError{Param: "tool_choice", Message: "tool_choice: must be an object such as {\"type\": \"auto\"}"}
		}
		switch tc.Type {
		case "any":
			r.ToolChoice = "required"
		case "tool":
			r.ToolChoice, r.ToolChoiceNamed = tc.Name, tc.Name != ""
		default:
			r.ToolChoice = tc.Type
		}
	}
	return r, nil
}

// OfferedTools returns the names of the tools offered.
func (r *MessagesRequest) OfferedTools() []string { return r.Tools }

// PolicyToolChoice returns ToolChoice and ToolChoiceNamed.
func (r *MessagesRequest) PolicyToolChoice() (choice string, named bool) {
	return r.ToolChoice, r.ToolChoiceNamed
}

// HistoryToolCalls returns the names of the tools the conversation's
// assistant turns called, in order of first call.
func (r *MessagesRequest) HistoryToolCalls() []string {
	var msgs []struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	}
	if json.Unmarshal(r.obj.Get("messages"), &msgs) != nil {
		return nil
	}
	var names []string
	for _, m := range msgs {
		if m.Role != "assistant" || len(m.Content) == 0 || m.Content[0] != '[' {
			continue
		}
		var blocks []struct {
			Type string `json:"type"`
			Name string `json:"name"`
		}
		if json.Unmarshal(m.Content, &blocks) != nil {
			continue
		}
		for _, b := range blocks {
			if b.Type == "tool_use" && b.Name != "" && !slices.Contains(names, b.Name) {
				names = append(names, b.Name)
			}
		}
	}
	return names
}

// StripTools removes the tools permit refuses and returns their names;
// when none is left, tools and tool_choice go.
func (r *MessagesRequest) StripTools(permit func(name string) bool) (removed []string) {
	var kept []json.RawMessage
	for _, t := range r.tools {
		if !permit(t.name) {
			removed = append(removed, t.name)
			continue
		}
		kept = append(kept, t.raw)
	}
	if len(removed) == 0 {
		return nil
	}
	r.Tools = slices.DeleteFunc(r.Tools, func(n string) bool { return !permit(n) })
	if len(kept) == 0 {
		r.remove = append(r.remove, "tools", "tool_choice")
		return removed
	}
	arr, _ := json.Marshal(kept)
	r.set = append(r.set, adapters.Field{Key: "tools", Value: arr})
	return removed
}

// CapMaxTokens lowers max_tokens to limit, and reports whether it changed.
func (r *MessagesRequest) CapMaxTokens(limit int) bool {
	if limit <= 0 || r.MaxTokens <= limit {
		return false
	}
	r.MaxTokens = limit
	r.set = append(r.set, adapters.Field{Key: "max_tokens", Value: strconv.AppendInt(nil, int64(limit), 10)})
	return true
}

// Encode returns the body to send to Anthropic: the client's bytes with
// the model replaced and the edits of CapMaxTokens and StripTools applied.
func (r *MessagesRequest) Encode(upstreamModel string) []byte {
	model, _ := json.Marshal(upstreamModel)
	set := append([]adapters.Field{{Key: "model", Value: model}}, r.set...)
	return r.obj.Edit(set, r.remove)
}

// Unified decodes the request, as the client sent it, into the gateway's
// unified request, for a provider of another format.
func (r *MessagesRequest) Unified() (*adapters.Request, error) {
	return DecodeRequest(r.obj.Edit(nil, nil))
}

// Wire types of a Messages request.
type (
	wireRequest struct {
		Model         string            `json:"model"`
		MaxTokens     int               `json:"max_tokens"`
		System        json.RawMessage   `json:"system,omitempty"`
		Messages      []wireMessage     `json:"messages"`
		Tools         []wireTool        `json:"tools,omitempty"`
		ToolChoice    *wireToolChoice   `json:"tool_choice,omitempty"`
		Temperature   *float64          `json:"temperature,omitempty"`
		TopP          *float64          `json:"top_p,omitempty"`
		TopK          *int              `json:"top_k,omitempty"`
		StopSequences []string          `json:"stop_sequences,omitempty"`
		Stream        bool              `json:"stream,omitempty"`
		Metadata      *wireMetadata     `json:"metadata,omitempty"`
		OutputConfig  *wireOutputConfig `json:"output_config,omitempty"`
	}
	wireMessage struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	}
	wireTool struct {
		Type        string          `json:"type,omitempty"`
		Name        string          `json:"name"`
		Description string          `json:"description,omitempty"`
		InputSchema json.RawMessage `json:"input_schema,omitempty"`
		Strict      bool            `json:"strict,omitempty"`
	}
	wireToolChoice struct {
		Type                   string `json:"type"`
		Name                   string `json:"name,omitempty"`
		DisableParallelToolUse bool   `json:"disable_parallel_tool_use,omitempty"`
	}
	wireMetadata struct {
		UserID string `json:"user_id,omitempty"`
	}
	wireOutputConfig struct {
		Format *wireFormat `json:"format,omitempty"`
	}
	wireFormat struct {
		Type   string          `json:"type"`
		Schema json.RawMessage `json:"schema,omitempty"`
	}
	// wireBlock is any content block, as decoded.
	wireBlock struct {
		Type      string          `json:"type"`
		Text      string          `json:"text"`
		Source    *wireSource     `json:"source"`
		ID        string          `json:"id"`
		Name      string          `json:"name"`
		Input     json.RawMessage `json:"input"`
		ToolUseID string          `json:"tool_use_id"`
		Content   json.RawMessage `json:"content"`
		IsError   bool            `json:"is_error"`
		Thinking  string          `json:"thinking"`
	}
	wireSource struct {
		Type      string `json:"type"`
		MediaType string `json:"media_type,omitempty"`
		Data      string `json:"data,omitempty"`
		URL       string `json:"url,omitempty"`
	}
)

// Blocks as encoded, each with only its own fields.
type (
	textBlock struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	imageBlock struct {
		Type   string     `json:"type"`
		Source wireSource `json:"source"`
	}
	toolUseBlock struct {
		Type  string          `json:"type"`
		ID    string          `json:"id"`
		Name  string          `json:"name"`
		Input json.RawMessage `json:"input"`
	}
	toolResultBlock struct {
		Type      string `json:"type"`
		ToolUseID string `json:"tool_use_id"`
		Content   []any  `json:"content,omitempty"`
		IsError   bool   `json:"is_error,omitempty"`
	}
)

// DecodeRequest reads a Messages request into the unified request.
// Content the other providers cannot carry (documents, server tools) is
// refused; thinking blocks and cache_control are dropped.
func DecodeRequest(body []byte) (*adapters.Request, error) {
	var w struct {
		wireRequest
		Thinking    json.RawMessage `json:"thinking"`
		ServiceTier json.RawMessage `json:"service_tier"`
	}
	if err := json.Unmarshal(body, &w); err != nil {
		return nil, &adapters.RequestError{Message: "the request body is not a valid Messages request: " + err.Error()}
	}
	req := &adapters.Request{
		Model:       w.Model,
		MaxTokens:   w.MaxTokens,
		Temperature: w.Temperature,
		TopP:        w.TopP,
		TopK:        w.TopK,
		Stop:        w.StopSequences,
		Stream:      w.Stream,
		// An Anthropic stream always reports usage.
		IncludeUsage: true,
	}
	if w.Metadata != nil {
		req.User = w.Metadata.UserID
	}
	if w.Thinking != nil {
		req.Dropped = append(req.Dropped, "thinking")
	}
	if w.ServiceTier != nil {
		req.Dropped = append(req.Dropped, "service_tier")
	}
	if len(w.System) > 0 && string(w.System) != "null" {
		parts, err := decodeContent(w.System, "system")
		if err != nil {
			return nil, err
		}
		req.Messages = append(req.Messages, adapters.Message{Role: adapters.RoleSystem, Content: parts})
	}
	for i, m := range w.Messages {
		if err := decodeMessage(req, m, i); err != nil {
			return nil, err
		}
	}
	for i, t := range w.Tools {
		if t.Type != "" && t.Type != "custom" {
			return nil, &adapters.RequestError{Param: fmt.Sprintf("tools[%d]", i),
				Message: fmt.Sprintf("tools[%d]: the server tool %q runs only on Anthropic; route this model to an Anthropic provider", i, t.Type)}
		}
		req.Tools = append(req.Tools, adapters.Tool{Name: t.Name, Description: t.Description, Parameters: t.InputSchema, Strict: t.Strict})
	}
	if tc := w.ToolChoice; tc != nil {
		switch tc.Type {
		case "auto":
			req.ToolChoice.Mode = adapters.ToolChoiceAuto
		case "any":
			req.ToolChoice.Mode = adapters.ToolChoiceRequired
		case "none":
			req.ToolChoice.Mode = adapters.ToolChoiceNone
		case "tool":
			req.ToolChoice = adapters.ToolChoice{Mode: adapters.ToolChoiceTool, Name: tc.Name}
		}
		if tc.DisableParallelToolUse {
			f := false
			req.ParallelToolCalls = &f
		}
	}
	if oc := w.OutputConfig; oc != nil && oc.Format != nil && oc.Format.Type == "json_schema" {
		req.ResponseFormat = &adapters.ResponseFormat{Type: "json_schema", Name: "output", Schema: oc.Format.Schema}
	}
	return req, nil
}

func decodeMessage(req *adapters.Request, m wireMessage, i int) error {
	param := fmt.Sprintf("messages[%d]", i)
	role := adapters.Role(m.Role)
	if role != adapters.RoleUser && role != adapters.RoleAssistant {
		return &adapters.RequestError{Param: param + ".role", Message: param + ".role: must be \"user\" or \"assistant\""}
	}
	if len(m.Content) > 0 && m.Content[0] == '"' {
		var s string
		_ = json.Unmarshal(m.Content, &s)
		req.Messages = append(req.Messages, adapters.Message{Role: role, Content: []adapters.Part{{Type: adapters.PartText, Text: s}}})
		return nil
	}
	var blocks []wireBlock
	if err := json.Unmarshal(m.Content, &blocks); err != nil {
		return &adapters.RequestError{Param: param + ".content", Message: param + ".content: must be a string or an array of content blocks"}
	}
	msg := adapters.Message{Role: role}
	for j, b := range blocks {
		bp := fmt.Sprintf("%s.content[%d]", param, j)
		switch b.Type {
		case "text":
			msg.Content = append(msg.Content, adapters.Part{Type: adapters.PartText, Text: b.Text})
		case "image":
			img, err := decodeImage(b.Source, bp)
			if err != nil {
				return err
			}
			msg.Content = append(msg.Content, adapters.Part{Type: adapters.PartImage, Image: img})
		case "tool_use":
			input := b.Input
			if len(input) == 0 {
				input = json.RawMessage("{}")
			}
			msg.ToolCalls = append(msg.ToolCalls, adapters.ToolCall{ID: b.ID, Name: b.Name, Arguments: string(input)})
		case "tool_result":
			result := adapters.Message{Role: adapters.RoleTool, ToolCallID: b.ToolUseID, IsError: b.IsError}
			if len(b.Content) > 0 && string(b.Content) != "null" {
				parts, err := decodeContent(b.Content, bp+".content")
				if err != nil {
					return err
				}
				result.Content = parts
			}
			req.Messages = append(req.Messages, result)
		case "thinking", "redacted_thinking":
			if !slices.Contains(req.Dropped, "thinking blocks") {
				req.Dropped = append(req.Dropped, "thinking blocks")
			}
		default:
			return &adapters.RequestError{Param: bp, Message: fmt.Sprintf("%s: a %q block cannot be translated for this model's provider", bp, b.Type)}
		}
	}
	if len(msg.Content) > 0 || len(msg.ToolCalls) > 0 {
		req.Messages = append(req.Messages, msg)
	}
	return nil
}

// decodeContent reads a string, or an array of text and image blocks.
func decodeContent(raw json.RawMessage, param string) ([]adapters.Part, error) {
	if raw[0] == '"' {
		var s string
		_ = json.Unmarshal(raw, &s)
		return []adapters.Part{{Type: adapters.PartText, Text: s}}, nil
	}
	var blocks []wireBlock
	if err := json.Unmarshal(raw, &blocks); err != nil {
		return nil, &adapters.RequestError{Param: param, Message: param + ": must be a string or an array of content blocks"}
	}
	parts := make([]adapters.Part, 0, len(blocks))
	for j, b := range blocks {
		switch b.Type {
		case "text":
			parts = append(parts, adapters.Part{Type: adapters.PartText, Text: b.Text})
		case "image":
			img, err := decodeImage(b.Source, fmt.Sprintf("%s[%d]", param, j))
			if err != nil {
				return nil, err
			}
			parts = append(parts, adapters.Part{Type: adapters.PartImage, Image: img})
		default:
			bp := fmt.Sprintf("%s[%d]", param, j)
			return nil, &adapters.RequestError{Param: bp, Message: fmt.Sprintf("%s: a %q block cannot be translated for this model's provider", bp, b.Type)}
		}
	}
	return parts, nil
}

func decodeImage(src *wireSource, param string) (*adapters.Image, error) {
	switch {
	case src == nil:
	case src.Type == "base64" && src.Data != "":
		return &adapters.Image{MediaType: src.MediaType, Data: src.Data}, nil
	case src.Type == "url" && src.URL != "":
		return &adapters.Image{URL: src.URL}, nil
	}
	return nil, &adapters.RequestError{Param: param, Message: param + ": an image needs a base64 or url source"}
}

// DefaultMaxTokens is the max_tokens sent to Anthropic, which requires
// one, when the client's request set no cap.
const DefaultMaxTokens = 4096

// EncodeRequest writes the unified request as a Messages request for
// model. It refuses what Anthropic cannot do without changing the
// request's meaning (several choices, JSON mode without a schema, an image
// in a system prompt) and drops, into req.Dropped, what it can leave out
// harmlessly (seed, penalties, logit bias, log probabilities, reasoning effort).
func EncodeRequest(req *adapters.Request, model string) ([]byte, error) {
	if req.N > 1 {
		return nil, &adapters.RequestError{Param: "n", Message: "n: Anthropic answers with one choice; send n=1 or leave it out"}
	}
	w := wireRequest{
		Model:         model,
		MaxTokens:     req.MaxTokens,
		Temperature:   req.Temperature,
		TopP:          req.TopP,
		TopK:          req.TopK,
		StopSequences: req.Stop,
		Stream:        req.Stream,
	}
	if w.MaxTokens == 0 {
		w.MaxTokens = DefaultMaxTokens
	}
	if t := w.Temperature; t != nil && *t > 1 {
		one := 1.0
		w.Temperature = &one // Anthropic's range is 0 to 1
	}
	if req.User != "" {
		w.Metadata = &wireMetadata{UserID: req.User}
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
	if rf := req.ResponseFormat; rf != nil {
		switch rf.Type {
		case "json_schema":
			w.OutputConfig = &wireOutputConfig{Format: &wireFormat{Type: "json_schema", Schema: rf.Schema}}
		case "json_object":
			return nil, &adapters.RequestError{Param: "response_format", Message: "response_format: Anthropic has no JSON mode without a schema; use {\"type\": \"json_schema\", ...}"}
		}
	}
	var system []string
	var pendingResults []any
	flushResults := func() {
		if len(pendingResults) > 0 {
			content, _ := json.Marshal(pendingResults)
			w.Messages = append(w.Messages, wireMessage{Role: "user", Content: content})
			pendingResults = nil
		}
	}
	for i, m := range req.Messages {
		param := fmt.Sprintf("messages[%d]", i)
		switch m.Role {
		case adapters.RoleSystem:
			for _, p := range m.Content {
				if p.Type != adapters.PartText {
					return nil, &adapters.RequestError{Param: param, Message: param + ": a system prompt for Anthropic can hold only text"}
				}
				system = append(system, p.Text)
			}
		case adapters.RoleTool:
			blocks, err := encodeBlocks(m.Content, param)
			if err != nil {
				return nil, err
			}
			pendingResults = append(pendingResults, toolResultBlock{Type: "tool_result", ToolUseID: m.ToolCallID, Content: blocks, IsError: m.IsError})
		case adapters.RoleUser, adapters.RoleAssistant:
			blocks, err := encodeBlocks(m.Content, param)
			if err != nil {
				return nil, err
			}
			for _, c := range m.ToolCalls {
				input := json.RawMessage(c.Arguments)
				if c.Arguments == "" {
					input = json.RawMessage("{}")
				}
				if !json.Valid(input) || input[0] != '{' {
					return nil, &adapters.RequestError{Param: param + ".tool_calls", Message: param + ".tool_calls: the arguments of " + c.Name + " are not a JSON object"}
				}
				blocks = append(blocks, toolUseBlock{Type: "tool_use", ID: c.ID, Name: c.Name, Input: input})
			}
			if m.Role == adapters.RoleUser && len(pendingResults) > 0 {
				// Tool results and the user's words that follow them
				// make one user turn, results first.
				pendingResults = append(pendingResults, blocks...)
				flushResults()
				continue
			}
			flushResults()
			if len(blocks) == 0 {
				continue // Anthropic refuses empty turns
			}
			var content []byte
			if tb, ok := blocks[0].(textBlock); ok && len(blocks) == 1 {
				content, _ = json.Marshal(tb.Text)
			} else {
				content, _ = json.Marshal(blocks)
			}
			w.Messages = append(w.Messages, wireMessage{Role: string(m.Role), Content: content})
		default:
			return nil, &adapters.RequestError{Param: param + ".role", Message: fmt.Sprintf("%s.role: %q cannot be translated for Anthropic", param, m.Role)}
		}
	}
	flushResults()
	if len(system) > 0 {
		joined := ""
		for i, s := range system {
			if i > 0 {
				joined += "\n\n"
			}
			joined += s
		}
		w.System, _ = json.Marshal(joined)
	}
	if len(w.Messages) == 0 {
		return nil, &adapters.RequestError{Param: "messages", Message: "messages: Anthropic needs at least one user or assistant message besides the system prompt"}
	}
	for _, t := range req.Tools {
		schema := t.Parameters
		if len(schema) == 0 || string(schema) == "null" {
			schema = json.RawMessage(`{"type":"object","properties":{}}`)
		}
		w.Tools = append(w.Tools, wireTool{Name: t.Name, Description: t.Description, InputSchema: schema, Strict: t.Strict})
	}
	if len(w.Tools) > 0 {
		w.ToolChoice = encodeToolChoice(req)
	}
	return json.Marshal(w)
}

func encodeToolChoice(req *adapters.Request) *wireToolChoice {
	tc := &wireToolChoice{Type: "auto"}
	switch req.ToolChoice.Mode {
	case adapters.ToolChoiceNone:
		return &wireToolChoice{Type: "none"}
	case adapters.ToolChoiceRequired:
		tc.Type = "any"
	case adapters.ToolChoiceTool:
		tc.Type, tc.Name = "tool", req.ToolChoice.Name
	case "":
		if req.ParallelToolCalls == nil || *req.ParallelToolCalls {
			return nil // Anthropic's default is auto
		}
	}
	tc.DisableParallelToolUse = req.ParallelToolCalls != nil && !*req.ParallelToolCalls
	return tc
}

func encodeBlocks(parts []adapters.Part, param string) ([]any, error) {
	blocks := make([]any, 0, len(parts))
	for _, p := range parts {
		switch p.Type {
		case adapters.PartText:
			if p.Text == "" {
				continue // Anthropic refuses empty text blocks
			}
			blocks = append(blocks, textBlock{Type: "text", Text: p.Text})
		case adapters.PartImage:
			src := wireSource{Type: "url", URL: p.Image.URL}
			if p.Image.URL == "" {
				src = wireSource{Type: "base64", MediaType: p.Image.MediaType, Data: p.Image.Data}
			}
			blocks = append(blocks, imageBlock{Type: "image", Source: src})
		default:
			return nil, &adapters.RequestError{Param: param, Message: param + ": this content cannot be sent to Anthropic"}
		}
	}
	return blocks, nil
}
