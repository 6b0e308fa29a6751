package openai

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// field is a top-level member to set: its key and its encoded value.
type field struct {
	key   string
	value []byte
}

// topLevel validates body as one JSON object and returns where each of its
// top-level members' values lies, in order. It scans the body once.
func topLevel(body []byte) ([]member, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	tok, err := dec.Token()
	if err != nil {
		return nil, &RequestError{Message: "the request body is not valid JSON: " + jsonProblem(err)}
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, &RequestError{Message: "the request body must be a JSON object"}
	}
	var members []member
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, &RequestError{Message: "the request body is not valid JSON: " + jsonProblem(err)}
		}
		key, _ := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, &RequestError{Param: key, Message: "the request body is not valid JSON: " + jsonProblem(err)}
		}
		end := int(dec.InputOffset())
		members = append(members, member{key: key, start: end - len(raw), end: end})
	}
	if _, err := dec.Token(); err != nil {
		return nil, &RequestError{Message: "the request body is not valid JSON: " + jsonProblem(err)}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, &RequestError{Message: "the request body has data after the JSON object"}
	}
	return members, nil
}

func jsonProblem(err error) string {
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		return fmt.Sprintf("%s (at byte %d)", syn.Error(), syn.Offset)
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return "it ends too early"
	}
	return err.Error()
}

// setFields sets top-level fields of the JSON object obj.
func setFields(obj []byte, set []field) ([]byte, error) {
	members, err := topLevel(obj)
	if err != nil {
		return nil, err
	}
	return setFieldsAt(obj, members, set), nil
}

// setFieldsAt replaces the values of the given fields in place, wherever
// they occur, and appends those that do not occur before the closing brace.
// Every other byte of obj is kept.
func setFieldsAt(obj []byte, members []member, set []field) []byte {
	out := make([]byte, 0, len(obj)+64)
	pos := 0
	done := make([]bool, len(set))
	for _, m := range members {
		for i, f := range set {
			if m.key == f.key {
				out = append(out, obj[pos:m.start]...)
				out = append(out, f.value...)
				pos = m.end
				done[i] = true
			}
		}
	}
	closing := bytes.LastIndexByte(obj, '}')
	out = append(out, obj[pos:closing]...)
	for i, f := range set {
		if done[i] {
			continue
		}
		if hasMember(out) {
			out = append(out, ',')
		}
		key, _ := json.Marshal(f.key)
		out = append(out, key...)
		out = append(out, ':')
		out = append(out, f.value...)
	}
	return append(out, obj[closing:]...)
}

// hasMember reports whether out, an object without its closing brace,
// already holds a member.
func hasMember(out []byte) bool {
	trimmed := bytes.TrimSpace(out)
	return len(trimmed) > 0 && trimmed[len(trimmed)-1] != '{'
}
