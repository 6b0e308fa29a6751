package adapters

import (
	"encoding/json"
	"testing"
)

// Editing any object keeps it one valid JSON object with the new values.
func FuzzObjectEdit(f *testing.F) {
	f.Add([]byte(`{"model":"a","max_tokens":5,"tools":[1]}`), true)
	f.Add([]byte(`{ "model" : "a" , "x" : {"model":1} }`), false)
	f.Add([]byte(`{}`), true)
	f.Fuzz(func(t *testing.T, body []byte, remove bool) {
		o, err := ParseObject(body)
		if err != nil {
			return
		}
		var rm []string
		if remove {
			rm = []string{"tools"}
		}
		out := o.Edit([]Field{{Key: "model", Value: []byte(`"b"`)}, {Key: "max_tokens", Value: []byte("7")}}, rm)
		var m map[string]json.RawMessage
		if err := json.Unmarshal(out, &m); err != nil {
			t.Fatalf("Edit(%s) = %s: %v", body, out, err)
		}
		if string(m["model"]) != `"b"` || string(m["max_tokens"]) != "7" {
			t.Fatalf("Edit(%s) = %s", body, out)
		}
		if _, ok := m["tools"]; remove && ok {
			t.Fatalf("tools kept: %s", out)
		}
	})
}
