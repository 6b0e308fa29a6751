package openai

import (
	"crypto/sha256"

	"portcullis/adapters"
)

// Dialect is one OpenAI-compatible provider's variant of the Chat
// Completions wire format: the same shapes, with the departures the wire
// reference documents (../shared/wire, table B of MAPPING.md). The zero
// value is OpenAI itself.
type Dialect string

// The dialects the gateway knows.
const (
	// DialectOpenAI is OpenAI, and any upstream that speaks its format exactly.
	DialectOpenAI Dialect = "openai"
	// DialectAzure is Azure OpenAI's dated deployments API: the deployment
	// in the URL, an api-version query parameter, an api-key header, and
	// streams that open with a content-filter chunk without choices.
	DialectAzure Dialect = "azure"
	// DialectVLLM is vLLM's OpenAI-compatible server.
	DialectVLLM Dialect = "vllm"
	// DialectGroq is GroqCloud: usage in x_groq.usage on a stream's last
	// chunk, n only 1.
	DialectGroq Dialect = "groq"
	// DialectMistral is Mistral's La Plateforme: 9-character tool-call
	// ids, no stream_options (usage comes on the finish chunk), seed
	// named random_seed, max_tokens only.
	DialectMistral Dialect = "mistral"
	// DialectPerplexity is Perplexity's Sonar API: no tools, no [DONE],
	// usage on every chunk, citations and search results beside the answer.
	DialectPerplexity Dialect = "perplexity"
	// DialectOllama is Ollama's /v1 API: max_completion_tokens and
	// tool_choice ignored, usage only when asked for.
	DialectOllama Dialect = "ollama-openai"
)

// Exact reports whether the dialect's requests and streams are OpenAI's
// closely enough for an OpenAI client's bytes to pass through unchanged
// (the gateway only rewrites the model). Every other dialect is
// translated through the unified types, so that its answers reach
// clients in OpenAI's exact shape: one usage chunk when asked for, a
// [DONE] at the end, no quirks.
func (d Dialect) Exact() bool {
	switch d {
	case "", DialectOpenAI, DialectAzure, DialectVLLM:
		return true
	}
	return false
}

// ServesEmbeddings reports whether the provider has an OpenAI-shaped
// POST /embeddings.
func (d Dialect) ServesEmbeddings() bool { return d != DialectPerplexity }

// maxTokensField is the request field that caps the output: the newer
// max_completion_tokens, or max_tokens where the provider reads only that.
func (d Dialect) maxTokensField() string {
	switch d {
	case DialectMistral, DialectPerplexity, DialectOllama:
		return "max_tokens"
	}
	return "max_completion_tokens"
}

// asksForUsage reports whether a stream asks for its usage through
// stream_options; Mistral and Perplexity refuse the field and report usage
// anyway.
func (d Dialect) asksForUsage() bool { return d != DialectMistral && d != DialectPerplexity }

// unsupportedFields are the request fields the dialect does not take and
// whose loss leaves the answer's meaning alone: they are left out, and
// named in the request's Dropped.
func (d Dialect) unsupportedFields() []string {
	switch d {
	case DialectMistral:
		return []string{"logprobs", "logit_bias", "user"}
	case DialectPerplexity:
		return []string{"logprobs", "logit_bias", "user", "seed"}
	case DialectOllama:
		return []string{"logit_bias"}
	}
	return nil
}

// adapt fits an encoded request to the dialect: it renames what the
// provider names otherwise, leaves out its unsupported fields, and refuses,
// with a RequestError, a request whose meaning the provider cannot keep.
func (d Dialect) adapt(req *adapters.Request, w *wireRequest) error {
	single := func(param string) error {
		return &RequestError{Param: param, Message: "'" + param + "' greater than 1 is not supported by this model's provider (" + string(d) + ")"}
	}
	switch {
	case d == DialectPerplexity && len(w.Tools) > 0:
		return &RequestError{Param: "tools", Message: "'tools' are not supported by this model's provider (perplexity): its Sonar API has no function calling"}
	case (d == DialectPerplexity || d == DialectGroq || d == DialectOllama) && w.N > 1:
		return single("n")
	case d == DialectOllama && len(w.Tools) > 0 && (req.ToolChoice.Mode == adapters.ToolChoiceRequired || req.ToolChoice.Mode == adapters.ToolChoiceTool):
		// Ollama ignores tool_choice: a forced call cannot be promised.
		return &RequestError{Param: "tool_choice", Message: "a 'tool_choice' that forces a tool call is not supported by this model's provider (ollama-openai), which ignores tool_choice; use \"auto\" or \"none\""}
	case d == DialectOllama && req.ToolChoice.Mode == adapters.ToolChoiceNone:
		// "none" is kept by not offering the tools.
		w.Tools, w.ToolChoice, w.ParallelToolCalls = nil, nil, nil
	}
	if d.maxTokensField() == "max_tokens" {
		w.MaxTokens, w.MaxCompletionTokens = w.MaxCompletionTokens, 0
	}
	if !d.asksForUsage() {
		w.StreamOptions = nil
	}
	if d == DialectMistral {
		w.RandomSeed, w.Seed = w.Seed, nil
	}
	for _, field := range d.unsupportedFields() {
		if w.clear(field) {
			req.Dropped = append(req.Dropped, field)
		}
	}
	return nil
}

// clear removes an optional field from the request and reports whether
// it was set.
func (w *wireRequest) clear(field string) bool {
	switch field {
	case "logprobs":
		set := w.Logprobs || w.TopLogprobs > 0
		w.Logprobs, w.TopLogprobs = false, 0
		return set
	case "logit_bias":
		set := w.LogitBias != nil
		w.LogitBias = nil
		return set
	case "user":
		set := w.User != ""
		w.User = ""
		return set
	case "seed":
		set := w.Seed != nil
		w.Seed = nil
		return set
	}
	return false
}

// toolCallID is the tool-call id the dialect accepts for id: unchanged,
// except that Mistral takes only 9 letters and digits, so any other id (an
// OpenAI "call_..." or Anthropic "toolu_..." one from the history) becomes
// 9 characters derived from it. The mapping is a pure function of the id,
// so a call and its result keep matching, turn after turn, without the
// gateway keeping state; Mistral never echoes the history's ids back, so
// no reverse mapping is needed in answers.
func (d Dialect) toolCallID(id string) string {
	if d != DialectMistral || mistralID(id) {
		return id
	}
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	sum := sha256.Sum256([]byte(id))
	out := make([]byte, 9)
	for i := range out {
		out[i] = alphabet[int(sum[i])%len(alphabet)]
	}
	return string(out)
}

// mistralID reports whether id is already a valid Mistral tool-call id.
func mistralID(id string) bool {
	if len(id) != 9 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// finishReason maps a dialect's finish reason to OpenAI's: Mistral's
// model_length (its context ran out) is length, and its error is stop, as
// the wire mapping advises.
func finishReason(s string) string {
	switch s {
	case "model_length":
		return "length"
	case "error":
		return "stop"
	}
	return s
}
