// Package openai speaks OpenAI's Chat Completions wire format, which is also
// the gateway's own inbound API: it reads what the gateway needs from a
// request without re-encoding it, rewrites only what must change, reads
// usage from responses and stream chunks, and sends calls to any
// OpenAI-compatible upstream.
package openai

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"

	"portcullis/adapters"
)

// RequestError is a request the gateway refuses before forwarding it; its
// message names the offending field (Param, in OpenAI's sense).
type RequestError = adapters.RequestError

// ChatRequest is what the gateway reads from a chat completions body. The
// body itself is kept and forwarded byte for byte, except for the fields
// Encode rewrites.
type ChatRequest struct {
	Model  string
	Stream bool
	// IncludeUsage is the client's own stream_options.include_usage.
	IncludeUsage bool
	// MaxTokens is max_completion_tokens, or else the deprecated
	// max_tokens; 0 when neither is set.
	MaxTokens int
	// Tools are the names of the function tools offered.
	Tools []string
	// ToolChoice is "none", "auto", "required", or the name of the one
	// function the model must call (then ToolChoiceNamed is set).
	ToolChoice      string
	ToolChoiceNamed bool

	body    []byte
	members []member
	tools   []tool
	edits   edits
}

// tool is one element of the request's tools array.
type tool struct {
	name string // "" for a tool that is not a function
	raw  json.RawMessage
}

// member is the location of one top-level field of the body.
type member struct {
	key        string
	start, end int // value bytes: body[start:end]
}

// ParseChatRequest reads a chat completions request body.
func ParseChatRequest(body []byte) (*ChatRequest, error) {
	members, err := topLevel(body)
	if err != nil {
		return nil, err
	}
	req := &ChatRequest{body: body, members: members}
	hasModel, hasMessages := false, false
	for _, m := range members {
		raw := body[m.start:m.end]
		switch m.key {
		case "model":
			if err := json.Unmarshal(raw, &req.Model); err != nil || req.Model == "" {
				return nil, &RequestError{Param: "model", Message: "'model' must be a non-empty string naming the model to use"}
			}
			hasModel = true
		case "messages":
			if raw[0] != '[' {
				return nil, &RequestError{Param: "messages", Message: "'messages' must be an array of message objects"}
			}
			if len(bytes.TrimSpace(raw[1:len(raw)-1])) == 0 {
				return nil, &RequestError{Param: "messages", Message: "'messages' must hold at least one message"}
			}
			hasMessages = true
		case "stream":
			if err := json.Unmarshal(raw, &req.Stream); err != nil && !isNull(raw) {
				return nil, &RequestError{Param: "stream", Message: "'stream' must be true or false"}
			}
		case "stream_options":
			var so struct {
				IncludeUsage bool `json:"include_usage"`
			}
			if err := json.Unmarshal(raw, &so); err != nil && !isNull(raw) {
				return nil, &RequestError{Param: "stream_options", Message: "'stream_options' must be an object such as {\"include_usage\": true}"}
			}
			req.IncludeUsage = so.IncludeUsage
		case "max_completion_tokens", "max_tokens":
			if isNull(raw) {
				continue
			}
			n, err := strconv.Atoi(string(raw))
			if err != nil || n < 1 {
				return nil, &RequestError{Param: m.key, Message: fmt.Sprintf("'%s' must be a positive whole number", m.key)}
			}
			if m.key == "max_completion_tokens" || req.MaxTokens == 0 {
				req.MaxTokens = n
			}
		case "tools":
			if err := req.readTools(raw); err != nil {
				return nil, err
			}
		case "tool_choice":
			req.readToolChoice(raw)
		}
	}
	switch {
	case !hasModel:
		return nil, &RequestError{Param: "model", Message: "you must provide a 'model' field naming the model to use"}
	case !hasMessages:
		return nil, &RequestError{Param: "messages", Message: "you must provide a 'messages' field: an array of messages"}
	}
	return req, nil
}

func (r *ChatRequest) readTools(raw []byte) error {
	var elems []json.RawMessage
	if err := json.Unmarshal(raw, &elems); err != nil {
		return &RequestError{Param: "tools", Message: "'tools' must be an array of {\"type\": \"function\", \"function\": {...}} objects"}
	}
	r.tools = make([]tool, 0, len(elems))
	for _, e := range elems {
		var t toolRef
		if err := json.Unmarshal(e, &t); err != nil {
			return &RequestError{Param: "tools", Message: "'tools' must be an array of {\"type\": \"function\", \"function\": {...}} objects"}
		}
		name := t.name()
		r.tools = append(r.tools, tool{name: name, raw: e})
		if name != "" {
			r.Tools = append(r.Tools, name)
		}
	}
	return nil
}

// toolRef is how OpenAI names a tool, in tools, tool_choice and the tool
// calls of a conversation: a function tool by its function's name, a custom
// tool by its own name, and a built-in tool (web_search, say) by its type.
type toolRef struct {
	Type     string `json:"type"`
	Function struct {
		Name string `json:"name"`
	} `json:"function"`
	Custom struct {
		Name string `json:"name"`
	} `json:"custom"`
}

// name is the name the policy checks; every kind of tool has one, so none
// slips past an allowlist.
func (t *toolRef) name() string {
	switch {
	case t.Function.Name != "":
		return t.Function.Name
	case t.Custom.Name != "":
		return t.Custom.Name
	default:
		return t.Type
	}
}

func (r *ChatRequest) readToolChoice(raw []byte) {
	if raw[0] == '"' {
		_ = json.Unmarshal(raw, &r.ToolChoice)
		return
	}
	var named toolRef
	if json.Unmarshal(raw, &named) == nil && named.Type != "allowed_tools" {
		r.ToolChoice = named.name()
		r.ToolChoiceNamed = r.ToolChoice != ""
	}
}

// Encode returns the body to send upstream: the client's bytes with the
// model replaced by upstreamModel, the edits of CapMaxTokens and StripTools
// applied, and, when forceUsage is set on a stream,
// stream_options.include_usage turned on so the gateway always learns the
// usage. Nothing else changes.
func (r *ChatRequest) Encode(upstreamModel string, forceUsage bool) ([]byte, error) {
	model, err := json.Marshal(upstreamModel)
	if err != nil {
		return nil, err
	}
	set := []field{{key: "model", value: model}}
	if forceUsage && r.Stream && !r.IncludeUsage {
		opts := []byte(`{"include_usage":true}`)
		for _, m := range r.members {
			if m.key == "stream_options" && !isNull(r.body[m.start:m.end]) {
				if opts, err = setFields(r.body[m.start:m.end], []field{{key: "include_usage", value: []byte("true")}}); err != nil {
					return nil, err
				}
			}
		}
		set = append(set, field{key: "stream_options", value: opts})
	}
	set = append(set, r.edits.set...)
	if len(r.edits.remove) > 0 {
		return rebuildObject(r.body, r.members, set, r.edits.remove), nil
	}
	return setFieldsAt(r.body, r.members, set), nil
}

func isNull(raw []byte) bool { return string(raw) == "null" }
