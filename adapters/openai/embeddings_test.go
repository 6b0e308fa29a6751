package openai

import (
	"errors"
	"testing"
)

func TestParseEmbeddingsRequest(t *testing.T) {
	for _, tt := range []struct {
		name, body, param string // param "": accepted
	}{
		{"strings", `{"model":"m","input":["a","b"],"encoding_format":"float"}`, ""},
		{"one string", `{"model":"m","input":"a"}`, ""},
		{"token arrays", `{"model":"m","input":[[1,2],[3]]}`, ""},
		{"no model", `{"input":"a"}`, "model"},
		{"empty model", `{"model":"","input":"a"}`, "model"},
		{"no input", `{"model":"m"}`, "input"},
		{"null input", `{"model":"m","input":null}`, "input"},
		{"empty string", `{"model":"m","input":""}`, "input"},
		{"empty array", `{"model":"m","input":[ ]}`, "input"},
		{"a number", `{"model":"m","input":5}`, "input"},
		{"not an object", `["m"]`, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req, err := ParseEmbeddingsRequest([]byte(tt.body))
			var re *RequestError
			switch {
			case tt.name == "not an object":
				if !errors.As(err, &re) {
					t.Errorf("err %v", err)
				}
			case tt.param == "":
				if err != nil || req.Model != "m" {
					t.Fatalf("err %v", err)
				}
				out, _ := req.Encode("up", true)
				if want := tt.body[:len(`{"model":`)] + `"up"` + tt.body[len(`{"model":"m"`):]; string(out) != want {
					t.Errorf("forwarded %s, want %s", out, want)
				}
			case !errors.As(err, &re) || re.Param != tt.param:
				t.Errorf("err %v, want a refusal of %s", err, tt.param)
			}
		})
	}
}
