package openai

import (
	"bytes"
	"encoding/json"
	"slices"

	"portcullis/adapters"
)

// wireExtra are the answer fields of OpenAI-compatible dialects that
// their own clients read, kept raw through a translation: Perplexity's
// citations (the URLs its [1], [2] refer to) and search_results.
type wireExtra struct {
	Citations     json.RawMessage `json:"citations,omitempty"`
	SearchResults json.RawMessage `json:"search_results,omitempty"`
}

// extra returns the fields present, or nil.
func (w *wireExtra) extra() adapters.Extra {
	var x adapters.Extra
	for _, f := range []struct {
		name string
		raw  json.RawMessage
	}{{"citations", w.Citations}, {"search_results", w.SearchResults}} {
		if len(f.raw) == 0 || string(f.raw) == "null" {
			continue
		}
		if x == nil {
			x = adapters.Extra{}
		}
		x[f.name] = f.raw
	}
	return x
}

// appendExtra writes x's fields, in name order and compacted, as more
// members of the JSON object obj.
func appendExtra(obj []byte, x adapters.Extra) []byte {
	if len(x) == 0 || len(obj) < 2 || obj[len(obj)-1] != '}' {
		return obj
	}
	names := make([]string, 0, len(x))
	for name := range x {
		names = append(names, name)
	}
	slices.Sort(names)
	out := bytes.NewBuffer(append([]byte(nil), obj[:len(obj)-1]...))
	for _, name := range names {
		mark := out.Len()
		if out.Len() > 1 {
			out.WriteByte(',')
		}
		k, _ := json.Marshal(name)
		out.Write(k)
		out.WriteByte(':')
		if json.Compact(out, x[name]) != nil {
			out.Truncate(mark) // not JSON: left out
		}
	}
	out.WriteByte('}')
	return out.Bytes()
}
