package openai

import (
	"bytes"
	"encoding/json"

	"portcullis/adapters"
)

// wireUsage is CompletionUsage as OpenAI sends it.
type wireUsage struct {
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

func (u *wireUsage) usage() adapters.Usage {
	return adapters.Usage{
		PromptTokens:     u.PromptTokens,
		CompletionTokens: u.CompletionTokens,
		TotalTokens:      u.TotalTokens,
		CachedTokens:     u.PromptTokensDetails.CachedTokens,
		ReasoningTokens:  u.CompletionTokensDetails.ReasoningTokens,
	}
}

// Summary is what the gateway reads from a chat completion or one chunk of
// a stream.
type Summary struct {
	// Model is the model the upstream says served the call.
	Model string
	// Usage is nil when the body carries none.
	Usage *adapters.Usage
	// Error is set when the body is an error object.
	Error *ErrorBody
}

// ErrorBody is OpenAI's error object.
type ErrorBody struct {
	Message string          `json:"message"`
	Type    string          `json:"type"`
	Param   json.RawMessage `json:"param,omitempty"`
	Code    json.RawMessage `json:"code,omitempty"`
}

// CodeString returns the error code when it is a string.
func (e *ErrorBody) CodeString() string {
	var s string
	_ = json.Unmarshal(e.Code, &s)
	return s
}

// ReadSummary reads the model, usage and error of a response body or a
// stream chunk. It returns a zero Summary for bodies it cannot read: the
// body is still forwarded, only the accounting is missing.
func ReadSummary(body []byte) Summary {
	var wire struct {
		Model string     `json:"model"`
		Usage *wireUsage `json:"usage"`
		XGroq *struct {
			Usage *wireUsage `json:"usage"`
		} `json:"x_groq"`
		Error *ErrorBody `json:"error"`
	}
	if json.Unmarshal(body, &wire) != nil {
		return Summary{}
	}
	s := Summary{Model: wire.Model, Error: wire.Error}
	if wire.Usage == nil && wire.XGroq != nil {
		wire.Usage = wire.XGroq.Usage
	}
	if wire.Usage != nil {
		u := wire.Usage.usage()
		s.Usage = &u
	}
	return s
}

// Chunk classifies one data payload of a chat completions stream cheaply,
// without decoding it: the gateway only decodes the chunks it must read.
type Chunk struct {
	// Done is the "[DONE]" sentinel.
	Done bool
	// HasUsage means the chunk carries a usage object.
	HasUsage bool
	// UsageOnly is the extra chunk that include_usage adds: empty choices
	// and a usage object.
	UsageOnly bool
	// IsError is a mid-stream error object.
	IsError bool
	// FilterOnly is a chunk with no choices and no usage, such as the
	// prompt filter results that open Azure's streams: nothing for a
	// client, and it has no id, so clients that expect choices[0] break on it.
	FilterOnly bool
	// Finished is a chunk that carries a finish reason.
	Finished bool
}

// ClassifyChunk looks at a stream data payload.
func ClassifyChunk(data []byte) Chunk {
	if bytes.Equal(data, []byte("[DONE]")) {
		return Chunk{Done: true}
	}
	var c Chunk
	c.HasUsage = bytes.Contains(data, []byte(`"usage":{`)) || bytes.Contains(data, []byte(`"usage": {`))
	noChoices := bytes.Contains(data, []byte(`"choices":[]`)) || bytes.Contains(data, []byte(`"choices": []`))
	c.UsageOnly = c.HasUsage && noChoices
	c.FilterOnly = noChoices && !c.HasUsage
	c.IsError = bytes.HasPrefix(bytes.TrimSpace(data), []byte(`{"error"`))
	c.Finished = bytes.Contains(data, []byte(`"finish_reason":"`)) || bytes.Contains(data, []byte(`"finish_reason": "`))
	return c
}
