package openai

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/bits"
	"strconv"
	"unicode/utf8"
)

// field is a top-level member to set: its key and its encoded value.
type field struct {
	key   string
	value []byte
}

// maxDepth is how deeply arrays and objects may nest, the top-level object
// counting as one. It is encoding/json's own limit, so the gateway accepts
// exactly the bodies json.Valid accepts, and a hostile body of brackets
// costs a bit per level, never a stack frame.
const maxDepth = 10000

// endOfInput is what a scan wanted when the body ran out first.
const endOfInput = "end of input"

// topLevel validates body as one JSON object, as strictly as json.Valid
// (RFC 8259; bytes that are not UTF-8 pass inside strings, as they do there),
// and returns its top-level members' keys and where their values lie, in
// order. It reads the body once, byte by byte outside strings and a word at
// a time inside them, and keeps nesting on a bit stack rather than the call
// stack.
func topLevel(body []byte) ([]member, error) {
	members := make([]member, 0, 8)
	var small [2]uint64
	arrays := small[:] // bit d is set while the container at depth d is an array
	depth := 0
	object := false // whether the top-level value is an object
	param := ""     // key of the top-level member being read
	start := 0      // where that member's value begins
	i := 0
	for {
		// A value begins at i, after optional whitespace.
		i = skipSpace(body, i)
		if i == len(body) {
			return nil, notJSON(body, i, endOfInput, param)
		}
		if depth == 0 {
			object = body[i] == '{'
		} else if depth == 1 {
			start = i
		}
		var why string
		switch c := body[i]; c {
		case '"':
			i, why = scanString(body, i+1)
		case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
			i, why = scanNumber(body, i)
		case 't':
			i, why = scanLiteral(body, i, "true")
		case 'f':
			i, why = scanLiteral(body, i, "false")
		case 'n':
			i, why = scanLiteral(body, i, "null")
		case '[', '{':
			if depth++; depth > maxDepth {
				return nil, notJSON(body, i, "exceeded max depth", param)
			}
			if depth>>6 == len(arrays) {
				arrays = append(arrays, 0)
			}
			i = skipSpace(body, i+1)
			if i == len(body) {
				return nil, notJSON(body, i, endOfInput, param)
			}
			if c == '[' {
				arrays[depth>>6] |= 1 << (depth & 63)
				if body[i] != ']' {
					continue // to the first element
				}
				depth--
				i++
				break
			}
			arrays[depth>>6] &^= 1 << (depth & 63)
			if body[i] != '}' {
				if i, param, why = readKey(body, i, depth, param); why == "" {
					continue // to the first member's value
				}
				return nil, notJSON(body, i, why, param)
			}
			depth--
			i++
		default:
			why = "looking for beginning of value"
		}
		if why != "" {
			return nil, notJSON(body, i, why, param)
		}

		// A value ends at i: close what it closes and find the next one.
		for next := false; !next; {
			if depth == 0 {
				return finish(body, i, object, members)
			}
			if depth == 1 && object {
				members = append(members, member{key: param, start: start, end: i})
				param = ""
			}
			i = skipSpace(body, i)
			if i == len(body) {
				return nil, notJSON(body, i, endOfInput, param)
			}
			inArray := arrays[depth>>6]>>(depth&63)&1 == 1
			switch c := body[i]; {
			case c == ',' && inArray:
				i++
				next = true
			case c == ',':
				if i, param, why = readKey(body, i+1, depth, param); why != "" {
					return nil, notJSON(body, i, why, param)
				}
				next = true
			case c == ']' && inArray, c == '}' && !inArray:
				depth--
				i++
			case inArray:
				return nil, notJSON(body, i, "after array element", param)
			default:
				return nil, notJSON(body, i, "after object key:value pair", param)
			}
		}
	}
}

// finish checks what follows the top-level value, which ends at i.
func finish(body []byte, i int, object bool, members []member) ([]member, error) {
	if !object {
		return nil, &RequestError{Message: "the request body must be a JSON object"}
	}
	if skipSpace(body, i) != len(body) {
		return nil, &RequestError{Message: "the request body has data after the JSON object"}
	}
	return members, nil
}

// readKey reads `"key" :` from i, after optional whitespace, in an object at
// depth, and returns where its value may begin, or, on failure, what
// scanString does. At depth 1 the key, decoded, becomes param: the member
// that errors from here to the end of its value are about.
func readKey(body []byte, i, depth int, param string) (next int, key, why string) {
	i = skipSpace(body, i)
	if i == len(body) {
		return i, param, endOfInput
	}
	if body[i] != '"' {
		return i, param, "looking for beginning of object key string"
	}
	end, why := scanString(body, i+1)
	if why != "" {
		return end, param, why
	}
	if depth == 1 {
		param = decodeKey(body[i:end])
	}
	i = skipSpace(body, end)
	if i == len(body) {
		return i, param, endOfInput
	}
	if body[i] != ':' {
		return i, param, "after object key"
	}
	return i + 1, param, ""
}

// decodeKey returns the text of a valid quoted key. Keys are almost always
// plain ASCII; the rare one with escapes or bytes that are not UTF-8 is
// decoded by encoding/json, so that "mo\u0064el" is "model" here exactly as
// it is to whoever reads the body next.
func decodeKey(quoted []byte) string {
	text := quoted[1 : len(quoted)-1]
	if bytes.IndexByte(text, '\\') < 0 && utf8.Valid(text) {
		return keyString(text)
	}
	var key string
	_ = json.Unmarshal(quoted, &key) // cannot fail: the scan validated it
	return key
}

// keyString returns text as a string, without allocating for the top-level
// fields a chat request most often carries.
func keyString(text []byte) string {
	switch string(text) {
	case "model":
		return "model"
	case "messages":
		return "messages"
	case "stream":
		return "stream"
	case "stream_options":
		return "stream_options"
	case "max_tokens":
		return "max_tokens"
	case "max_completion_tokens":
		return "max_completion_tokens"
	case "temperature":
		return "temperature"
	case "top_p":
		return "top_p"
	case "tools":
		return "tools"
	case "tool_choice":
		return "tool_choice"
	case "response_format":
		return "response_format"
	case "user":
		return "user"
	}
	return string(text)
}

// notJSON reports the syntax error at body[i], or at its end when i is past
// it, the way encoding/json words it: what the offending byte is, what was
// expected instead, and its position counting from 1.
func notJSON(body []byte, i int, why, param string) *RequestError {
	const prefix = "the request body is not valid JSON: "
	if i >= len(body) {
		return &RequestError{Param: param, Message: prefix + "it ends too early"}
	}
	return &RequestError{Param: param, Message: fmt.Sprintf("%sinvalid character %s %s (at byte %d)", prefix, quoteChar(body[i]), why, i+1)}
}

// quoteChar formats c as encoding/json does in its syntax errors.
func quoteChar(c byte) string {
	switch c {
	case '\'':
		return `'\''`
	case '"':
		return `'"'`
	}
	s := strconv.Quote(string(rune(c)))
	return "'" + s[1:len(s)-1] + "'"
}

// skipSpace returns the index of the first byte at or after i that is not
// JSON whitespace.
func skipSpace(body []byte, i int) int {
	for i < len(body) {
		switch body[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// Words of eight equal bytes, for looking at eight string bytes at once.
const (
	ones  = 0x0101010101010101
	highs = 0x8080808080808080
)

// scanString reads a string from body[i], just past its opening quote, and
// returns the index just past its closing quote. On failure it returns the
// offending byte's index, or len(body) if the body ends first, and what was
// expected there.
//
// Message text is nearly all of a request, so the loop over plain string
// bytes is the scanner's hot path: it takes eight bytes at a time and asks
// of all eight at once whether any is a quote, a backslash or a control
// character, the only bytes that end the run.
func scanString(body []byte, i int) (int, string) {
	for {
		for i+8 <= len(body) {
			w := binary.LittleEndian.Uint64(body[i:])
			q := w ^ ones*'"'
			b := w ^ ones*'\\'
			// A byte x is zero when (x-1)&^x has its high bit set, and below
			// 0x20 when (x-0x20)&^x does; a borrow can flag only bytes above
			// the first true hit, so the lowest flag is exact.
			hits := ((q-ones)&^q | (b-ones)&^b | (w-ones*0x20)&^w) & highs
			if hits != 0 {
				i += bits.TrailingZeros64(hits) >> 3
				break
			}
			i += 8
		}
		for i < len(body) && body[i] >= 0x20 && body[i] != '"' && body[i] != '\\' {
			i++
		}
		if i == len(body) {
			return i, endOfInput
		}
		switch body[i] {
		case '"':
			return i + 1, ""
		case '\\':
			if i++; i == len(body) {
				return i, endOfInput
			}
			switch body[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i++
			case 'u':
				for range 4 {
					if i++; i == len(body) {
						return i, endOfInput
					}
					if !isHex(body[i]) {
						return i, `in \u hexadecimal character escape`
					}
				}
				i++
			default:
				return i, "in string escape code"
			}
		default:
			return i, "in string literal"
		}
	}
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// scanNumber reads a number from body[i], its first byte ('-' or a digit),
// and returns the index just past it, or, on failure, what scanString does.
func scanNumber(body []byte, i int) (int, string) {
	if body[i] == '-' {
		if i++; i == len(body) {
			return i, endOfInput
		}
		if !isDigit(body[i]) {
			return i, "in numeric literal"
		}
	}
	if body[i] == '0' {
		i++ // no more integer digits: a following digit ends the number
	} else {
		for i < len(body) && isDigit(body[i]) {
			i++
		}
	}
	if i < len(body) && body[i] == '.' {
		if i++; i == len(body) {
			return i, endOfInput
		}
		if !isDigit(body[i]) {
			return i, "after decimal point in numeric literal"
		}
		for i < len(body) && isDigit(body[i]) {
			i++
		}
	}
	if i < len(body) && (body[i] == 'e' || body[i] == 'E') {
		if i++; i < len(body) && (body[i] == '+' || body[i] == '-') {
			i++
		}
		if i == len(body) {
			return i, endOfInput
		}
		if !isDigit(body[i]) {
			return i, "in exponent of numeric literal"
		}
		for i < len(body) && isDigit(body[i]) {
			i++
		}
	}
	return i, ""
}

// scanLiteral reads lit (true, false or null) from body[i], whose first
// byte already matches, and returns the index just past it, or, on failure,
// what scanString does.
func scanLiteral(body []byte, i int, lit string) (int, string) {
	for k := 1; k < len(lit); k++ {
		if i+k == len(body) {
			return i + k, endOfInput
		}
		if body[i+k] != lit[k] {
			return i + k, "in literal " + lit + " (expecting " + quoteChar(lit[k]) + ")"
		}
	}
	return i + len(lit), ""
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
