package adapters

import (
	"encoding/json"
	"slices"
	"time"
)

// The unified types are the gateway's own words for a chat call, whatever
// API it came in by and whatever provider serves it. Each provider family
// translates its wire format to and from them; the gateway never
// translates from one wire format straight into another. They carry
// everything a translator may need, so that a provider added later fills
// in what it supports and refuses, with a RequestError, what it cannot
// carry without changing the request's meaning.

// Role is who wrote a message.
type Role string

// The roles of a conversation. Developer messages arrive as RoleSystem.
const (
	RoleSystem    Role = "system"
	RoleUser      Role = "user"
	RoleAssistant Role = "assistant"
	// RoleTool is the result of a tool call, answering ToolCallID.
	RoleTool Role = "tool"
)

// Request is one chat call in the gateway's own terms.
type Request struct {
	// Model is the model the client asked for; translators write the
	// upstream model they are given instead.
	Model string
	// Messages are the conversation in order. System messages stay where
	// they were; a provider that takes one top-level system prompt joins them.
	Messages []Message
	// Tools are the function tools offered to the model.
	Tools []Tool
	// ToolChoice says whether and which tool the model must call. Zero
	// value: the provider's default (auto when tools are offered).
	ToolChoice ToolChoice
	// ParallelToolCalls is nil when the client did not say.
	ParallelToolCalls *bool

	// MaxTokens caps the output; 0 when the client set no cap.
	MaxTokens int
	// Sampling parameters are nil when the client did not set them.
	Temperature      *float64
	TopP             *float64
	TopK             *int
	PresencePenalty  *float64
	FrequencyPenalty *float64
	Seed             *int64
	// Stop are the stop sequences.
	Stop []string
	// N is how many choices the client wants; 0 or 1 is one.
	N int
	// Logprobs asks for token log probabilities, TopLogprobs for that many
	// alternatives each.
	Logprobs    bool
	TopLogprobs int
	// LogitBias is OpenAI's token bias map, kept raw; nil when absent.
	LogitBias json.RawMessage
	// ResponseFormat is nil for plain text.
	ResponseFormat *ResponseFormat
	// ReasoningEffort is OpenAI's reasoning_effort ("low", "medium", ...).
	ReasoningEffort string
	// User identifies the end user to the provider, for abuse monitoring.
	User string

	// Stream asks for an event stream.
	Stream bool
	// IncludeUsage is the client asking for a usage chunk at the end of an
	// OpenAI stream.
	IncludeUsage bool

	// Dropped names the inbound fields that were read but have no place in
	// the unified request and do not change the answer's meaning (OpenAI's
	// store or metadata, Anthropic's cache_control, say), for the log.
	Dropped []string
}

// Message is one turn of the conversation.
type Message struct {
	Role Role
	// Content is the message's text and images, in order. For a tool
	// result it is the result.
	Content []Part
	// ToolCalls are the calls an assistant message made.
	ToolCalls []ToolCall
	// ToolCallID is the call a RoleTool message answers.
	ToolCallID string
	// IsError marks a tool result that reports a failure.
	IsError bool
}

// PartType is the kind of a content part.
type PartType string

// The content part kinds the gateway translates.
const (
	PartText  PartType = "text"
	PartImage PartType = "image"
)

// Part is one piece of a message's content.
type Part struct {
	Type PartType
	// Text is set for PartText.
	Text string
	// Image is set for PartImage.
	Image *Image
}

// Image is an image given by URL or inline.
type Image struct {
	// URL is an http(s) URL; empty for inline data.
	URL string
	// MediaType ("image/png") and Data (base64, no data: prefix) are set
	// for inline images.
	MediaType string
	Data      string
	// Detail is OpenAI's resolution hint ("low", "high", "auto"), if given.
	Detail string
}

// Tool is a function the model may call.
type Tool struct {
	Name        string
	Description string
	// Parameters is the JSON Schema of the arguments object.
	Parameters json.RawMessage
	// Strict asks the provider to follow the schema exactly.
	Strict bool
}

// ToolChoiceMode is how the model may use the tools.
type ToolChoiceMode string

// The tool choice modes.
const (
	ToolChoiceAuto     ToolChoiceMode = "auto"
	ToolChoiceNone     ToolChoiceMode = "none"
	ToolChoiceRequired ToolChoiceMode = "required"
	// ToolChoiceTool forces the call of the tool named in ToolChoice.Name.
	ToolChoiceTool ToolChoiceMode = "tool"
)

// ToolChoice is the client's tool choice; the zero value leaves it to the provider.
type ToolChoice struct {
	Mode ToolChoiceMode
	Name string
}

// ToolCall is one call of a function tool.
type ToolCall struct {
	ID   string
	Name string
	// Arguments is the arguments object as JSON text, as OpenAI carries it.
	Arguments string
}

// ResponseFormat asks for structured output.
type ResponseFormat struct {
	// Type is "json_object" or "json_schema".
	Type string
	// Name, Schema and Strict describe a json_schema format.
	Name   string
	Schema json.RawMessage
	Strict bool
}

// FinishReason is why the model stopped, in OpenAI's words.
type FinishReason string

// The finish reasons.
const (
	FinishStop          FinishReason = "stop"
	FinishLength        FinishReason = "length"
	FinishToolCalls     FinishReason = "tool_calls"
	FinishContentFilter FinishReason = "content_filter"
)

// Response is a whole (non-streamed) answer.
type Response struct {
	// ID is the provider's id of the answer.
	ID string
	// Model is the model the provider says answered.
	Model string
	// Created is when, in Unix seconds; 0 when the provider does not say.
	Created int64
	// Text is the answer's text; Reasoning is visible reasoning text, if
	// the provider returned any.
	Text      string
	Reasoning string
	ToolCalls []ToolCall
	Finish    FinishReason
	Usage     Usage
	// Extra are the provider's answer fields that have no unified
	// equivalent but that its own clients read, such as Perplexity's
	// citations and search_results: written as top-level fields of an
	// OpenAI answer, left out of other formats. nil when there are none.
	Extra Extra
}

// Extra are answer fields kept raw, by name.
type Extra map[string]json.RawMessage

// EventType is the kind of a StreamEvent.
type EventType uint8

// The stream event kinds. A stream starts with EventStart and, when it
// completes, has had an EventFinish; EventUsage may come several times
// (the last one wins) and EventError ends the stream.
const (
	// EventStart carries the answer's ID and Model.
	EventStart EventType = iota + 1
	// EventText carries a fragment of the answer's text.
	EventText
	// EventReasoning carries a fragment of visible reasoning text.
	EventReasoning
	// EventToolCall begins a tool call: ToolIndex, ToolCallID, ToolName,
	// and possibly a first Arguments fragment (or all of them).
	EventToolCall
	// EventToolArgs carries a fragment of the arguments of call ToolIndex.
	EventToolArgs
	// EventFinish carries the finish reason.
	EventFinish
	// EventUsage carries the usage so far.
	EventUsage
	// EventError is an error the provider reported mid-stream.
	EventError
)

// StreamEvent is one step of a streamed answer.
type StreamEvent struct {
	Type EventType
	// ID and Model are set on EventStart.
	ID, Model string
	// Text is set on EventText and EventReasoning.
	Text string
	// ToolIndex counts the answer's tool calls from 0.
	ToolIndex  int
	ToolCallID string
	ToolName   string
	Arguments  string
	Finish     FinishReason
	Usage      *Usage
	Err        *UpstreamError
	// Extra is set on EventFinish, as Response.Extra.
	Extra Extra
}

// ErrorKind classifies a provider's error, whatever its wire shape.
type ErrorKind string

// The error kinds the gateway tells apart.
const (
	ErrInvalidRequest ErrorKind = "invalid_request"
	ErrContextLength  ErrorKind = "context_length_exceeded"
	ErrAuth           ErrorKind = "authentication"
	ErrPermission     ErrorKind = "permission"
	ErrNotFound       ErrorKind = "not_found"
	ErrTooLarge       ErrorKind = "request_too_large"
	ErrRateLimit      ErrorKind = "rate_limit"
	ErrQuota          ErrorKind = "insufficient_quota"
	ErrOverloaded     ErrorKind = "overloaded"
	ErrServer         ErrorKind = "server_error"
)

// UpstreamError is an error a provider answered with, decoded from its
// wire shape.
type UpstreamError struct {
	// Status is the provider's HTTP status (200 for an error in a stream).
	Status int
	Kind   ErrorKind
	// Type and Code are the provider's own error type and code.
	Type string
	Code string
	// Message is the provider's message.
	Message string
	// Retryable says the same call may succeed later or elsewhere.
	Retryable bool
	// RetryAfter is how long the provider asked to wait; 0 when it did not say.
	RetryAfter time.Duration
}

func (e *UpstreamError) Error() string {
	return "upstream " + string(e.Kind) + ": " + e.Message
}

// RequestError is a request the gateway refuses: it is malformed, or the
// target provider cannot carry one of its fields without changing its
// meaning. The client gets a 400 naming the field.
type RequestError struct {
	// Param is the request field at fault, in OpenAI's "param" sense.
	Param   string
	Message string
}

func (e *RequestError) Error() string { return e.Message }

// OfferedTools returns the names of the tools offered.
func (r *Request) OfferedTools() []string {
	names := make([]string, 0, len(r.Tools))
	for _, t := range r.Tools {
		names = append(names, t.Name)
	}
	return names
}

// PolicyToolChoice returns the tool choice in the words the policy sees
// for every API: "auto", "none", "required", or the name of the tool the
// model must call, and then named is set.
func (r *Request) PolicyToolChoice() (choice string, named bool) {
	if r.ToolChoice.Mode == ToolChoiceTool {
		return r.ToolChoice.Name, true
	}
	return string(r.ToolChoice.Mode), false
}

// HistoryToolCalls returns the names of the tools that assistant messages
// called, in order of first call.
func (r *Request) HistoryToolCalls() []string {
	var names []string
	for _, m := range r.Messages {
		for _, c := range m.ToolCalls {
			if c.Name != "" && !slices.Contains(names, c.Name) {
				names = append(names, c.Name)
			}
		}
	}
	return names
}

// StripTools removes the tools permit refuses and returns their names.
// When none is left, the tool choice goes too.
func (r *Request) StripTools(permit func(name string) bool) (removed []string) {
	kept := r.Tools[:0:0]
	for _, t := range r.Tools {
		if permit(t.Name) {
			kept = append(kept, t)
			continue
		}
		removed = append(removed, t.Name)
	}
	r.Tools = kept
	if len(kept) == 0 {
		r.ToolChoice = ToolChoice{}
		r.ParallelToolCalls = nil
	}
	return removed
}

// CapMaxTokens lowers the output cap to limit, and reports whether it changed.
func (r *Request) CapMaxTokens(limit int) bool {
	if limit <= 0 || (r.MaxTokens > 0 && r.MaxTokens <= limit) {
		return false
	}
	r.MaxTokens = limit
	return true
}
