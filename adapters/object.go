package adapters

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"slices"
)

// Object is a JSON object body whose top-level members have been located,
// so that a passthrough can rewrite one field (the model, a token cap)
// and forward every other byte as the client sent it.
type Object struct {
	body    []byte
	members []member
}

type member struct {
	key        string
	start, end int // the value is body[start:end]
}

// Field is a top-level member to set: its key and encoded value.
type Field struct {
	Key   string
	Value []byte
}

// ErrNotObject is returned for a body that is not one JSON object.
var ErrNotObject = errors.New("the body is not a JSON object")

// ParseObject locates the top-level members of body, which must be
// exactly one valid JSON object.
func ParseObject(body []byte) (*Object, error) {
	if !json.Valid(body) {
		return nil, ErrNotObject
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, ErrNotObject
	}
	o := &Object{body: body}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, ErrNotObject
		}
		key, _ := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, ErrNotObject
		}
		end := int(dec.InputOffset())
		o.members = append(o.members, member{key: key, start: end - len(raw), end: end})
	}
	if _, err := dec.Token(); err != nil {
		return nil, ErrNotObject
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, ErrNotObject
	}
	return o, nil
}

// Get returns a member's value, or nil when the object has none (or null).
// When a key repeats, the last one counts, as for encoding/json.
func (o *Object) Get(key string) []byte {
	for i := len(o.members) - 1; i >= 0; i-- {
		m := o.members[i]
		if m.key == key {
			v := o.body[m.start:m.end]
			if string(v) == "null" {
				return nil
			}
			return v
		}
	}
	return nil
}

// Has reports whether the object has a non-null member key.
func (o *Object) Has(key string) bool { return o.Get(key) != nil }

// Edit returns the object with the given fields set (replaced where they
// are, added at the end otherwise) and the removed keys left out. Without
// removals every other byte stays as it was.
func (o *Object) Edit(set []Field, remove []string) []byte {
	out := make([]byte, 0, len(o.body)+64)
	written := make([]bool, len(set))
	value := func(m member) []byte {
		v := o.body[m.start:m.end]
		for i, f := range set {
			if f.Key == m.key {
				v, written[i] = f.Value, true
			}
		}
		return v
	}
	if len(remove) == 0 {
		prev := 0
		for _, m := range o.members {
			out = append(out, o.body[prev:m.start]...)
			out = append(out, value(m)...)
			prev = m.end
		}
		closing := bytes.LastIndexByte(o.body, '}')
		out = append(out, o.body[prev:closing]...)
		n := len(o.members)
		for i, f := range set {
			if !written[i] {
				if n > 0 {
					out = append(out, ',')
				}
				n++
				out = appendMember(out, f.Key, f.Value)
			}
		}
		return append(out, o.body[closing:]...)
	}
	out = append(out, '{')
	first := true
	for _, m := range o.members {
		if slices.Contains(remove, m.key) {
			continue
		}
		if !first {
			out = append(out, ',')
		}
		first = false
		out = appendMember(out, m.key, value(m))
	}
	for i, f := range set {
		if !written[i] {
			if !first {
				out = append(out, ',')
			}
			first = false
			out = appendMember(out, f.Key, f.Value)
		}
	}
	return append(out, '}')
}

func appendMember(out []byte, key string, value []byte) []byte {
	k, _ := json.Marshal(key)
	out = append(out, k...)
	out = append(out, ':')
	return append(out, value...)
}
