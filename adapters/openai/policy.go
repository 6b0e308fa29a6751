package openai

import "portcullis/adapters"

// OfferedTools returns the names of the tools offered, as the policy sees them.
func (r *ChatRequest) OfferedTools() []string { return r.Tools }

// PolicyToolChoice returns ToolChoice and ToolChoiceNamed.
func (r *ChatRequest) PolicyToolChoice() (choice string, named bool) {
	return r.ToolChoice, r.ToolChoiceNamed
}

// Unified decodes the request, as the client sent it, into the gateway's
// unified request, for a provider of another format.
func (r *ChatRequest) Unified() (*adapters.Request, error) { return DecodeRequest(r.body) }
