package demo

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"math"
	"net/http"
	"strconv"
)

// EmbeddingDimensions is the length of the demo model's vectors, unless
// the request asks for fewer.
const EmbeddingDimensions = 8

// embeddings answers POST /v1/embeddings as OpenAI does, with vectors
// that depend on the text alone: the same input always embeds to the same
// unit vector, and different inputs to different ones.
func (h *Handler) embeddings(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Model      string          `json:"model"`
		Input      json.RawMessage `json:"input"`
		Dimensions int             `json:"dimensions"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "invalid_json", "We could not parse the JSON body of your request.")
		return
	}
	var inputs []string
	if len(req.Input) > 0 && req.Input[0] == '"' {
		var s string
		_ = json.Unmarshal(req.Input, &s)
		inputs = []string{s}
	} else if err := json.Unmarshal(req.Input, &inputs); err != nil || len(inputs) == 0 {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "invalid_value", "'input' must be a string or a non-empty array of strings.")
		return
	}
	dims := EmbeddingDimensions
	if req.Dimensions > 0 && req.Dimensions < dims {
		dims = req.Dimensions
	}
	type embedding struct {
		Object    string    `json:"object"`
		Index     int       `json:"index"`
		Embedding []float64 `json:"embedding"`
	}
	out := struct {
		Object string      `json:"object"`
		Data   []embedding `json:"data"`
		Model  string      `json:"model"`
		Usage  struct {
			PromptTokens int `json:"prompt_tokens"`
			TotalTokens  int `json:"total_tokens"`
		} `json:"usage"`
	}{Object: "list", Model: req.Model}
	for i, in := range inputs {
		out.Data = append(out.Data, embedding{Object: "embedding", Index: i, Embedding: Embed(in, dims)})
		out.Usage.PromptTokens += countTokens(in)
	}
	out.Usage.TotalTokens = out.Usage.PromptTokens
	body, _ := json.Marshal(out)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.Write(body)
}

// Embed is the demo model's vector of text: dims numbers drawn from the
// text's SHA-256, scaled to unit length and rounded to 4 decimals.
func Embed(text string, dims int) []float64 {
	v := make([]float64, dims)
	seed := sha256.Sum256([]byte(text))
	var norm float64
	for i := range v {
		block := sha256.Sum256(append(seed[:], byte(i)))
		x := float64(binary.BigEndian.Uint32(block[:4]))/math.MaxUint32*2 - 1
		v[i], norm = x, norm+x*x
	}
	norm = math.Sqrt(norm)
	for i := range v {
		v[i] = math.Round(v[i]/norm*1e4) / 1e4
	}
	return v
}
