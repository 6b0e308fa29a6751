package openai

import (
	"encoding/json"
	"slices"
	"strconv"
)

// edits are the changes a policy decision makes to a request, applied by
// Encode.
type edits struct {
	set    []field
	remove []string
}

// CapMaxTokens lowers the request's output cap to limit (when the client
// set none, or a larger one), in the field the client used:
// max_completion_tokens, or the deprecated max_tokens. It reports whether
// the request changed.
func (r *ChatRequest) CapMaxTokens(limit int) bool {
	if limit <= 0 || (r.MaxTokens > 0 && r.MaxTokens <= limit) {
		return false
	}
	key := "max_completion_tokens"
	if r.has("max_tokens") && !r.has("max_completion_tokens") {
		key = "max_tokens"
	}
	r.edits.set = append(r.edits.set, field{key: key, value: strconv.AppendInt(nil, int64(limit), 10)})
	r.MaxTokens = limit
	return true
}

// StripTools removes the function tools that permit refuses, and returns
// their names. When none is left, tools goes, and so do tool_choice and
// parallel_tool_calls, which upstreams refuse without tools. The caller
// checks ToolChoice first: a choice naming a refused tool cannot be kept.
func (r *ChatRequest) StripTools(permit func(name string) bool) (removed []string) {
	kept := make([]json.RawMessage, 0, len(r.tools))
	for _, t := range r.tools {
		if !permit(t.name) {
			removed = append(removed, t.name)
			continue
		}
		kept = append(kept, t.raw)
	}
	if len(removed) == 0 {
		return nil
	}
	r.Tools = slices.DeleteFunc(r.Tools, func(name string) bool { return !permit(name) })
	if len(kept) == 0 {
		r.edits.remove = append(r.edits.remove, "tools", "tool_choice", "parallel_tool_calls")
		return removed
	}
	arr := []byte{'['}
	for i, raw := range kept {
		if i > 0 {
			arr = append(arr, ',')
		}
		arr = append(arr, raw...)
	}
	r.edits.set = append(r.edits.set, field{key: "tools", value: append(arr, ']')})
	return removed
}

// HistoryToolCalls returns the names of the tools that assistant messages
// in the conversation called, in order of first call. The messages are only
// decoded when this is asked, which the gateway does only when the policy
// restricts tools.
func (r *ChatRequest) HistoryToolCalls() []string {
	raw := r.raw("messages")
	if raw == nil {
		return nil
	}
	var msgs []struct {
		Role         string    `json:"role"`
		ToolCalls    []toolRef `json:"tool_calls"`
		FunctionCall *struct {
			Name string `json:"name"`
		} `json:"function_call"`
	}
	if json.Unmarshal(raw, &msgs) != nil {
		return nil
	}
	var names []string
	add := func(n string) {
		if n != "" && !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	for _, m := range msgs {
		if m.Role != "assistant" {
			continue
		}
		for _, c := range m.ToolCalls {
			add(c.name())
		}
		if m.FunctionCall != nil {
			add(m.FunctionCall.Name)
		}
	}
	return names
}

func (r *ChatRequest) has(key string) bool { return r.raw(key) != nil }

// raw returns a top-level member's value, or nil.
func (r *ChatRequest) raw(key string) []byte {
	for _, m := range r.members {
		if m.key == key && !isNull(r.body[m.start:m.end]) {
			return r.body[m.start:m.end]
		}
	}
	return nil
}

// rebuildObject writes obj anew from its members, leaving out the removed
// keys and setting the given fields. Values are copied byte for byte; only
// the white space between top-level members is not kept.
func rebuildObject(obj []byte, members []member, set []field, remove []string) []byte {
	out := make([]byte, 0, len(obj)+64)
	out = append(out, '{')
	written := make([]bool, len(set))
	first := true
	put := func(key string, value []byte) {
		if !first {
			out = append(out, ',')
		}
		first = false
		k, _ := json.Marshal(key)
		out = append(out, k...)
		out = append(out, ':')
		out = append(out, value...)
	}
	for _, m := range members {
		if slices.Contains(remove, m.key) {
			continue
		}
		value := obj[m.start:m.end]
		for i, f := range set {
			if f.key == m.key {
				value, written[i] = f.value, true
			}
		}
		put(m.key, value)
	}
	for i, f := range set {
		if !written[i] {
			put(f.key, f.value)
		}
	}
	return append(out, '}')
}
