package proxy

import "portcullis/adapters/openai"

// embeddings serves POST /v1/embeddings, passed through to providers
// with OpenAI-shaped embeddings (OpenAI, Azure, Groq, Mistral, Ollama,
// vLLM and the demo model) on the same path as chat: authenticated,
// decided by the policy as api "embeddings", and audited with the
// provider's prompt token count.
func (s *Server) embeddings(c *call) {
	id, body, ok := s.admit(c)
	if !ok {
		return
	}
	req, err := openai.ParseEmbeddingsRequest(body)
	if err != nil {
		s.refuseRequest(c, err)
		return
	}
	s.serveChat(c, id, &chatCall{
		api:         "embeddings",
		client:      openaiCodec{},
		model:       req.Model,
		native:      req,
		body:        body,
		passthrough: req.Encode,
		endpoint:    embeddingsEndpoint,
	})
}
