package openai

import (
	"bytes"
	"encoding/json"

	"portcullis/adapters"
)

// EmbeddingsRequest is what the gateway reads from an embeddings body
// (POST /v1/embeddings). The body is forwarded byte for byte but for the
// model: every OpenAI-compatible provider that has embeddings takes
// OpenAI's shape.
type EmbeddingsRequest struct {
	Model string
	obj   *adapters.Object
}

// ParseEmbeddingsRequest reads an embeddings request body: a model and a
// non-empty input (a string, or an array of strings or of token arrays).
func ParseEmbeddingsRequest(body []byte) (*EmbeddingsRequest, error) {
	obj, err := adapters.ParseObject(body)
	if err != nil {
		return nil, &RequestError{Message: "the request body must be a JSON object: " + err.Error()}
	}
	r := &EmbeddingsRequest{obj: obj}
	if err := json.Unmarshal(obj.Get("model"), &r.Model); err != nil || r.Model == "" {
		return nil, &RequestError{Param: "model", Message: "'model' must be a non-empty string naming the embedding model to use"}
	}
	input := obj.Get("input")
	switch {
	case input == nil:
		return nil, &RequestError{Param: "input", Message: "you must provide an 'input': a string or an array of strings to embed"}
	case string(input) == `""`:
		return nil, &RequestError{Param: "input", Message: "'input' must not be empty"}
	case input[0] == '"': // one text to embed
	case input[0] == '[':
		// ParseObject checked the JSON; an empty array is all to refuse
		// here, without decoding what may be many inputs.
		if len(bytes.TrimSpace(input[1:len(input)-1])) == 0 {
			return nil, &RequestError{Param: "input", Message: "'input' must hold at least one string to embed"}
		}
	default:
		return nil, &RequestError{Param: "input", Message: "'input' must be a string or an array of strings"}
	}
	return r, nil
}

// Encode returns the body to send upstream: the client's bytes with the
// model replaced by upstreamModel.
func (r *EmbeddingsRequest) Encode(upstreamModel string, _ bool) ([]byte, error) {
	model, err := json.Marshal(upstreamModel)
	if err != nil {
		return nil, err
	}
	return r.obj.Edit([]adapters.Field{{Key: "model", Value: model}}, nil), nil
}

// An embeddings request offers no tools and has no output to cap; these
// methods let the policy decision apply to it as to a chat call.

// OfferedTools returns nothing: embeddings offer no tools.
func (r *EmbeddingsRequest) OfferedTools() []string { return nil }

// PolicyToolChoice returns no choice.
func (r *EmbeddingsRequest) PolicyToolChoice() (string, bool) { return "", false }

// HistoryToolCalls returns nothing.
func (r *EmbeddingsRequest) HistoryToolCalls() []string { return nil }

// StripTools removes nothing.
func (r *EmbeddingsRequest) StripTools(func(string) bool) []string { return nil }

// CapMaxTokens changes nothing: an embedding has no output tokens.
func (r *EmbeddingsRequest) CapMaxTokens(int) bool { return false }
