package demo

import (
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
)

func TestEmbeddings(t *testing.T) {
	h := &Handler{}
	embed := func(t *testing.T, body string) (int, []byte) {
		t.Helper()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/v1/embeddings", strings.NewReader(body)))
		return rec.Code, rec.Body.Bytes()
	}
	type answer struct {
		Object string `json:"object"`
		Data   []struct {
			Index     int       `json:"index"`
			Embedding []float64 `json:"embedding"`
		} `json:"data"`
		Model string `json:"model"`
		Usage struct {
			PromptTokens int `json:"prompt_tokens"`
			TotalTokens  int `json:"total_tokens"`
		} `json:"usage"`
	}
	for _, tt := range []struct {
		name    string
		body    string
		vectors int
		dims    int
		tokens  int
	}{
		{"one string", `{"model":"demo","input":"The cat sat on the mat."}`, 1, EmbeddingDimensions, 7},
		{"two strings", `{"model":"demo","input":["The cat sat on the mat.","A dog barked twice."]}`, 2, EmbeddingDimensions, 12},
		{"fewer dimensions", `{"model":"demo","input":"hi","dimensions":4}`, 1, 4, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			status, body := embed(t, tt.body)
			var a answer
			if err := json.Unmarshal(body, &a); status != 200 || err != nil || a.Object != "list" || a.Model != "demo" {
				t.Fatalf("status %d: %s", status, body)
			}
			if len(a.Data) != tt.vectors || a.Usage.PromptTokens != tt.tokens || a.Usage.TotalTokens != tt.tokens {
				t.Fatalf("got %d vectors, usage %+v: %s", len(a.Data), a.Usage, body)
			}
			for i, d := range a.Data {
				var norm float64
				for _, x := range d.Embedding {
					norm += x * x
				}
				if d.Index != i || len(d.Embedding) != tt.dims || math.Abs(norm-1) > 1e-3 {
					t.Errorf("vector %d: index %d, %d dims, norm² %f", i, d.Index, len(d.Embedding), norm)
				}
			}
			if _, again := embed(t, tt.body); string(again) != string(body) {
				t.Errorf("the same input embeds differently:\n%s\n%s", body, again)
			}
		})
	}
	if reflect.DeepEqual(Embed("a", 8), Embed("b", 8)) {
		t.Error("different texts embed to the same vector")
	}
	if status, _ := embed(t, `{"model":"demo","input":[]}`); status != http.StatusBadRequest {
		t.Errorf("empty input: status %d", status)
	}
}
