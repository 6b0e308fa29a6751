package openai

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

// refMember is a top-level member as encoding/json sees it.
type refMember struct {
	key        string
	raw        []byte
	start, end int
}

// decoderMembers is the scanner's reference: the members of the object in
// body as encoding/json's Decoder reads them, token by token, each value
// decoded as a RawMessage. It was topLevel's implementation before the
// hand-written scanner, and the benchmark measures it too.
func decoderMembers(body []byte) ([]refMember, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errors.New("not an object")
	}
	var members []refMember
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, _ := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, err
		}
		end := int(dec.InputOffset())
		members = append(members, refMember{key: key, raw: raw, start: end - len(raw), end: end})
	}
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("data after the object")
	}
	return members, nil
}

// jsonSpace is the whitespace JSON allows; bytes.TrimSpace would trim more.
const jsonSpace = " \t\r\n"

// nested returns n arrays nested in one another, inside an object.
func nested(n int) string {
	return `{"a":` + strings.Repeat("[", n-1) + strings.Repeat("]", n-1) + `}`
}

// scanSeeds are bodies that exercise every rule of the grammar, valid and
// not, for the fuzz target's corpus and as plain test cases.
var scanSeeds = []string{
	// Valid objects.
	`{}`, ` { } `, "\t\r\n{\t\r\n}\t\r\n", `{"a":1}`, `{"a" : 1 , "b" : 2}`,
	`{"model":"smart","stream":true,"messages":[{"role":"user","content":"hi"}],"temperature":0.2}`,
	`{"a":{"b":{"c":[1,[2,[3,{}]],[]]}},"d":[]}`, `{"a":null,"b":true,"c":false}`,
	`{"a":"","b":"\"","c":"\\","d":"\/","e":"\b\f\n\r\t","f":"\u0000\uD83D\uDE00\uFFFF\ud800"}`,
	`{"mo\u0064el":"x","\u006dodel":"y","k\"ey":1,"\ud800":2,"\/":3}`,
	`{"a":1,"a":2}`, `{"":0}`, `{"é":"ü","日本":"語"}`,
	// Numbers at their edges.
	`{"n":0}`, `{"n":-0}`, `{"n":0.0}`, `{"n":-0.5e-10}`, `{"n":1E+2}`, `{"n":1e2}`,
	`{"n":123456789012345678901234567890}`, `{"n":[0,1,-1,0e0,0E-0,1.5E+300]}`,
	`{"n":01}`, `{"n":-}`, `{"n":+1}`, `{"n":.5}`, `{"n":1.}`, `{"n":1.e5}`, `{"n":1e}`,
	`{"n":1e+}`, `{"n":--1}`, `{"n":0x10}`, `{"n":1_000}`, `{"n":NaN}`, `{"n":Infinity}`,
	`{"n":-Infinity}`, `{"n":00}`, `{"n":-01}`, `{"n":1.5.5}`, `{"n":1e5e5}`,
	// Bytes that are not UTF-8, control characters and bad escapes in strings.
	"{\"a\":\"\xff\xfe\"}", "{\"\xff\":1}", "{\"a\":\"\xed\xa0\x80\"}", "{\"a\":\"\xc3\"}",
	"{\"a\":\"\x00\"}", "{\"a\":\"\x1f\"}", "{\"a\":\"\x7f\"}", "{\"a\":\"\t\"}", "{\"a\":\"\n\"}",
	`{"a":"\x"}`, `{"a":"\u12"}`, `{"a":"\u12G4"}`, `{"a":"\U0041"}`, `{"a":"\'"}`, `{"a":"\`,
	`{"a":"abc`, `{"a":"\u`, "{\"a\":\"0123456789abcdef\x01\"}", `{"a":"0123456789abcdef\q"}`,
	// Literals.
	`{"a":tru}`, `{"a":trUe}`, `{"a":fals}`, `{"a":nul}`, `{"a":nulll}`, `{"a":True}`, `{"a":undefined}`,
	// Structure.
	`{`, `{"a"`, `{"a":`, `{"a":1`, `{"a":1,`, `{"a":1,}`, `{,}`, `{"a" 1}`, `{"a"::1}`,
	`{a:1}`, `{'a':1}`, `{"a":[1,]}`, `{"a":[,1]}`, `{"a":[1 2]}`, `{"a":[1}`, `{"a":{]}`,
	`{"a":{"b"}}`, `{"a":{"b":1,}}`, `{1:2}`, `{"a":1]`, `{"a":1}}`, `{"a":[]]}`,
	// Whitespace other than JSON's own.
	"{\"a\":\v1}", "{\"a\":\f1}", "{\"a\":\u00a01}", "\xef\xbb\xbf{}", "{}\x00", "{\"a\":1\u2028}",
	// Trailing data.
	`{} x`, `{}{}`, `{} {}`, `{}}`, `{}]`, `{}0`, `{}"x"`, "{}\n\n", `{}  ,`,
	// Not objects.
	``, ` `, `[]`, `[1,2]`, `"x"`, `1`, `-1.5`, `true`, `false`, `null`, `[`, `[1,2`, `"abc`,
	`x`, `nonsense`, `-`, `]`, `}`, `:`, `[] x`, `1x`, `1 2`,
	// Nesting, well within the limit.
	nested(2), nested(10), nested(65), nested(130),
}

// deepBodies nest at and past the depth limit. They are too big to be
// worth mutating, so TestTopLevelDeep checks them rather than the fuzzer.
var deepBodies = []string{
	nested(maxDepth - 1), nested(maxDepth), nested(maxDepth + 1),
	`{"a":` + strings.Repeat(`{"b":`, maxDepth-2) + `1` + strings.Repeat(`}`, maxDepth-2) + `}`,
	`{"a":` + strings.Repeat(`{"b":`, maxDepth-1) + `1` + strings.Repeat(`}`, maxDepth-1) + `}`,
	`{"a":` + strings.Repeat(`[{"b":`, maxDepth/2) + `1` + strings.Repeat(`}]`, maxDepth/2) + `}`,
	`{"a":` + strings.Repeat(`[`, maxDepth+5),
	`{"a":` + strings.Repeat(`[`, maxDepth-5),
	strings.Repeat(`[`, maxDepth) + strings.Repeat(`]`, maxDepth),
	strings.Repeat(`[`, maxDepth+1) + strings.Repeat(`]`, maxDepth+1),
}

// FuzzTopLevelMatchesEncodingJSON checks the scanner against encoding/json:
// topLevel accepts exactly the bodies json.Valid accepts that are objects,
// finds the members the Decoder finds, and reports the syntax error
// json.Unmarshal reports, at the same byte.
func FuzzTopLevelMatchesEncodingJSON(f *testing.F) {
	for _, s := range scanSeeds {
		f.Add([]byte(s))
	}
	// Strings long enough for the word-at-a-time loop, with a byte on
	// either side of each boundary it tests at every offset in a word.
	for _, c := range []byte{0x00, 0x1f, 0x20, '"', '\\', 0x7f, 0x80, 0xff} {
		for at := range 9 {
			text := []byte(strings.Repeat("\xe2\x82\xac", 6))
			text[at] = c
			f.Add([]byte(`{"a":"` + string(text) + `"}`))
		}
	}
	f.Fuzz(matchesEncodingJSON)
}

// matchesEncodingJSON is the fuzz target's check of one body.
func matchesEncodingJSON(t *testing.T, body []byte) {
	members, err := topLevel(body)
	isObject := bytes.HasPrefix(bytes.TrimLeft(body, jsonSpace), []byte("{"))
	if want := json.Valid(body) && isObject; (err == nil) != want {
		t.Fatalf("topLevel(%q) error = %v; want success %v", body, err, want)
	}
	if err != nil {
		checkError(t, body, isObject, err)
		return
	}
	want, refErr := decoderMembers(body)
	if refErr != nil {
		t.Fatalf("topLevel(%q) succeeded; the Decoder failed: %v", body, refErr)
	}
	if len(members) != len(want) {
		t.Fatalf("topLevel(%q) found %d members; the Decoder %d", body, len(members), len(want))
	}
	for i, m := range members {
		w := want[i]
		if m.key != w.key || m.start != w.start || m.end != w.end || !bytes.Equal(body[m.start:m.end], w.raw) {
			t.Fatalf("topLevel(%q) member %d = %q at [%d:%d] = %q; the Decoder's is %q at [%d:%d] = %q",
				body, i, m.key, m.start, m.end, body[m.start:m.end], w.key, w.start, w.end, w.raw)
		}
	}
}

// checkError checks the error topLevel gave for body against the one
// encoding/json gives.
func checkError(t *testing.T, body []byte, isObject bool, err error) {
	t.Helper()
	var reqErr *RequestError
	if !errors.As(err, &reqErr) {
		t.Fatalf("topLevel(%q) error is %T, not a *RequestError", body, err)
	}
	got := reqErr.Message
	if !isObject {
		// The first value alone decides: an array, a string, ... is a
		// request that is not an object, even with data after it.
		var first json.RawMessage
		want := "the request body must be a JSON object"
		if json.NewDecoder(bytes.NewReader(body)).Decode(&first) != nil {
			want = "the request body is not valid JSON: "
		}
		if !strings.HasPrefix(got, want) {
			t.Fatalf("topLevel(%q) error = %q; want it to start with %q", body, got, want)
		}
		return
	}
	var syn *json.SyntaxError
	if uErr := json.Unmarshal(body, new(json.RawMessage)); !errors.As(uErr, &syn) {
		t.Fatalf("topLevel(%q) error = %q; json.Unmarshal says %v", body, got, uErr)
	}
	want := fmt.Sprintf("the request body is not valid JSON: %s (at byte %d)", syn, syn.Offset)
	// At the end of its input encoding/json pretends to read a space, so a
	// body cut short inside an escape, a number or a literal is "invalid
	// character ' '" past its last byte; the scanner says it ends too early.
	endsEarly := syn.Error() == "unexpected end of JSON input" ||
		int(syn.Offset) == len(body) && body[len(body)-1] != ' ' && strings.HasPrefix(syn.Error(), "invalid character ' ' ")
	switch {
	case strings.HasSuffix(syn.Error(), "after top-level value"):
		want = "the request body has data after the JSON object"
	case endsEarly:
		want = "the request body is not valid JSON: it ends too early"
	}
	if got != want {
		t.Fatalf("topLevel(%q) error = %q; want %q", body, got, want)
	}
}

func TestTopLevelMembers(t *testing.T) {
	tests := []struct {
		body string
		want []string // key, value, key, value, ...
	}{
		{`{}`, nil},
		{` {"model" : "smart" , "n":[1, {"a":2}] } `, []string{"model", `"smart"`, "n", `[1, {"a":2}]`}},
		{`{"mo\u0064el":"x"}`, []string{"model", `"x"`}},
		{`{"a\"b":1,"\/":2,"\ud83d\ude00":3}`, []string{`a"b`, "1", "/", "2", "😀", "3"}},
		// Keys decode as encoding/json decodes them: what is not UTF-8 turns into U+FFFD.
		{"{\"m\xffodel\":1,\"\\ud800\":2}", []string{"m\uFFFDodel", "1", "\uFFFD", "2"}},
		// Values that are not UTF-8 are kept byte for byte.
		{"{\"a\":\"\xff\"}", []string{"a", "\"\xff\""}},
		{`{"a":1,"a":2}`, []string{"a", "1", "a", "2"}},
		{`{"n":-0.5e-10}`, []string{"n", "-0.5e-10"}},
	}
	for _, tt := range tests {
		members, err := topLevel([]byte(tt.body))
		if err != nil {
			t.Errorf("topLevel(%q): %v", tt.body, err)
			continue
		}
		var got []string
		for _, m := range members {
			got = append(got, m.key, tt.body[m.start:m.end])
		}
		if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", tt.want) {
			t.Errorf("topLevel(%q) = %q; want %q", tt.body, got, tt.want)
		}
	}
}

func TestTopLevelErrors(t *testing.T) {
	const bad = "the request body is not valid JSON: "
	tests := []struct {
		body, param, message string
	}{
		{``, "", bad + "it ends too early"},
		{"  \n", "", bad + "it ends too early"},
		{`{"model":"smart"`, "", bad + "it ends too early"},
		{`{"model":"sm`, "model", bad + "it ends too early"},
		{`{"model":"x\y"}`, "model", bad + `invalid character 'y' in string escape code (at byte 13)`},
		{`{"a":"\u00G0"}`, "a", bad + `invalid character 'G' in \u hexadecimal character escape (at byte 11)`},
		{"{\"a\":\"x\ny\"}", "a", bad + `invalid character '\n' in string literal (at byte 8)`},
		{`{"a":01}`, "", bad + `invalid character '1' after object key:value pair (at byte 7)`},
		{`{"a":-x}`, "a", bad + `invalid character 'x' in numeric literal (at byte 7)`},
		{`{"a":1.}`, "a", bad + `invalid character '}' after decimal point in numeric literal (at byte 8)`},
		{`{"a":1e+}`, "a", bad + `invalid character '}' in exponent of numeric literal (at byte 9)`},
		{`{"a":+1}`, "a", bad + `invalid character '+' looking for beginning of value (at byte 6)`},
		{`{"a":trve}`, "a", bad + `invalid character 'v' in literal true (expecting 'u') (at byte 8)`},
		{`{"a" 1}`, "a", bad + `invalid character '1' after object key (at byte 6)`},
		{`{"a":1,}`, "", bad + `invalid character '}' looking for beginning of object key string (at byte 8)`},
		{`{'a':1}`, "", bad + `invalid character '\'' looking for beginning of object key string (at byte 2)`},
		{`{"a":[1 2]}`, "a", bad + `invalid character '2' after array element (at byte 9)`},
		{`{"a":{"b":1]}`, "a", bad + `invalid character ']' after object key:value pair (at byte 12)`},
		{"\xef\xbb\xbf{}", "", bad + `invalid character 'ï' looking for beginning of value (at byte 1)`},
		{nested(maxDepth + 1), "a", bad + fmt.Sprintf("invalid character '[' exceeded max depth (at byte %d)", 5+maxDepth)},
		{`[{"model":"smart"}]`, "", "the request body must be a JSON object"},
		{`"hello"`, "", "the request body must be a JSON object"},
		{`null`, "", "the request body must be a JSON object"},
		{`{"model":"smart"} {}`, "", "the request body has data after the JSON object"},
		{`{"model":"smart"}x`, "", "the request body has data after the JSON object"},
	}
	for _, tt := range tests {
		_, err := topLevel([]byte(tt.body))
		var reqErr *RequestError
		if !errors.As(err, &reqErr) {
			t.Errorf("topLevel(%q) error = %v; want a *RequestError", tt.body, err)
			continue
		}
		if reqErr.Message != tt.message || reqErr.Param != tt.param {
			t.Errorf("topLevel(%q) error = %q (param %q); want %q (param %q)", tt.body, reqErr.Message, reqErr.Param, tt.message, tt.param)
		}
	}
}

func TestTopLevelDeep(t *testing.T) {
	for _, body := range deepBodies {
		matchesEncodingJSON(t, []byte(body))
	}
	if _, err := topLevel([]byte(nested(maxDepth))); err != nil {
		t.Errorf("nesting %d deep: %v", maxDepth, err)
	}
	if _, err := topLevel([]byte(nested(maxDepth + 1))); err == nil {
		t.Errorf("nesting %d deep: no error", maxDepth+1)
	}
}

// BenchmarkTopLevel compares the scanner with json.Valid, which only
// validates, and with the Decoder-based reading it replaced.
func BenchmarkTopLevel(b *testing.B) {
	small := []byte(`{"model":"smart","stream":true,"messages":[{"role":"user","content":"Name the three primary colors."}],"temperature":0.2}`)
	large := []byte(`{"model":"smart","stream":true,"messages":[{"role":"user","content":"` + strings.Repeat("lorem ipsum ", 90000) + `"}]}`)
	// A long conversation: many messages, escapes, non-ASCII text, tools.
	var conv strings.Builder
	conv.WriteString(`{"model":"smart","temperature":0.7,"tools":[{"type":"function","function":{"name":"lookup","parameters":{"type":"object","properties":{"q":{"type":"string"}},"required":["q"]}}}],"messages":[`)
	for i := 0; conv.Len() < 1<<20; i++ {
		if i > 0 {
			conv.WriteByte(',')
		}
		fmt.Fprintf(&conv, `{"role":"user","content":"Line %d of the report:\n\t\"quoted\" — naïve café, 日本語 \u00e9 \\ done.\nNext: %d items at 3.5%%"},{"role":"assistant","content":null,"tool_calls":[{"id":"call_%d","type":"function","function":{"name":"lookup","arguments":"{\"q\":\"item %d\"}"}}]}`, i, i*7, i, i)
	}
	conv.WriteString(`]}`)
	for _, body := range []struct {
		name string
		data []byte
	}{{"small", small}, {"1MiB", large}, {"1MiB-conversation", []byte(conv.String())}} {
		for _, impl := range []struct {
			name string
			run  func([]byte) error
		}{
			{"scanner", func(d []byte) error { _, err := topLevel(d); return err }},
			{"json.Valid", func(d []byte) error {
				if !json.Valid(d) {
					return errors.New("invalid")
				}
				return nil
			}},
			{"Decoder", func(d []byte) error { _, err := decoderMembers(d); return err }},
		} {
			b.Run(body.name+"/"+impl.name, func(b *testing.B) {
				b.SetBytes(int64(len(body.data)))
				b.ReportAllocs()
				for b.Loop() {
					if err := impl.run(body.data); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
