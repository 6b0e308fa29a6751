package usage

import (
	"unicode"
	"unicode/utf8"
	"unsafe"
)

// EstimateText estimates how many tokens a BPE tokenizer of the GPT-4o /
// Claude kind makes of s, without its vocabulary: the text is split the
// way those tokenizers pre-split it (words with their leading space,
// digit groups of up to three, punctuation runs, whitespace) and each
// piece costs what pieces of its class and length cost on average in
// real tokenizations. Calibrated on testdata/estimate (prose, markdown,
// code, JSON, numbers, German, French, Chinese, Japanese) against
// o200k_base and cl100k_base; see docs/budgets.md for the measured error.
func EstimateText(s string) int64 {
	var tokens float64
	i := 0
	for i < len(s) {
		c := s[i]
		switch {
		case c == ' ' && i+1 < len(s) && isWordByte(s[i+1]):
			// A space joins the word after it.
			i++
		case c == '\n' || c == '\r' || c == ' ' || c == '\t':
			j := i
			for j < len(s) && (s[j] == '\n' || s[j] == '\r' || s[j] == ' ' || s[j] == '\t') {
				j++
			}
			// A run of blanks is one token, unless a space before a
			// word was left out of it.
			if j < len(s) && s[j-1] == ' ' && j-1 > i && isWordByte(s[j]) {
				j--
			}
			tokens += blankCost
			i = j
			continue
		}
		if i >= len(s) {
			break
		}
		c = s[i]
		switch {
		case c >= '0' && c <= '9':
			j := i
			for j < len(s) && s[j] >= '0' && s[j] <= '9' {
				j++
			}
			tokens += float64((j - i + 2) / 3)
			i = j
		case isASCIILetter(c):
			j := i
			for j < len(s) && (isASCIILetter(s[j]) || s[j] == '\'' && j+1 < len(s) && isASCIILetter(s[j+1])) {
				j++
			}
			tokens += wordCost(j - i)
			i = j
		case c < utf8.RuneSelf:
			// Punctuation and symbols: common pairs ("{\n", "//", "),")
			// are one token, longer runs split.
			j := i
			for j < len(s) && s[j] < utf8.RuneSelf && !isWordByte(s[j]) && s[j] != ' ' && s[j] != '\n' && s[j] != '\t' && s[j] != '\r' {
				j++
			}
			tokens += float64(j-i+1) / 2 * punctFactor
			i = j
		default:
			r, size := utf8.DecodeRuneInString(s[i:])
			switch {
			case unicode.Is(unicode.Han, r) || unicode.Is(unicode.Hiragana, r) || unicode.Is(unicode.Katakana, r) || unicode.Is(unicode.Hangul, r):
				tokens += cjkCost
			case r < 0x250 && unicode.IsLetter(r):
				// An accented letter inside a Latin word usually costs a
				// token boundary of its own.
				tokens += accentCost
			case unicode.IsLetter(r):
				// Other alphabets (Cyrillic, Greek, Arabic...) split into
				// pieces of about two and a half letters.
				tokens += alphabetCost
			default:
				tokens += symbolCost
			}
			i += size
		}
	}
	return int64(tokens + 0.5)
}

// The calibrated costs, fitted by a grid search over the samples that
// minimised the worst per-file error (docs/budgets.md).
const (
	punctFactor  = 0.6
	cjkCost      = 0.9
	accentCost   = 0.3
	alphabetCost = 0.4
	symbolCost   = 1.0
	wordFree     = 5
	wordPer      = 4.0
	blankCost    = 1.0
)

// wordCost is what a run of n ASCII letters costs: common words are one
// token, longer ones split into pieces of about four letters.
func wordCost(n int) float64 {
	if n <= wordFree {
		return 1
	}
	return 1 + float64(n-wordFree)/wordPer
}

func isASCIILetter(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }

func isWordByte(c byte) bool {
	return isASCIILetter(c) || c >= '0' && c <= '9' || c >= utf8.RuneSelf
}

// The costs of a request's structure, as OpenAI's chat format adds them:
// each message (and each tool) costs a few tokens of framing, and the
// answer's priming a few more. An image is charged a flat, generous
// amount (a 1024×1024 image is 765 tokens at OpenAI, ~1,400 at Anthropic).
//
// Offering tools costs more than their definitions: the provider wraps
// them in a prompt of its own (OpenAI's function namespace, Llama's
// tool-use template: a get_weather tool and one question are 231 prompt
// tokens at Groq). toolsTokens is charged once for a request with tools.
const (
	perItemTokens  = 3
	primingTokens  = 3
	toolsTokens    = 160
	imageTokens    = 1500
	schemaKeyDepth = 5
)

// EstimateRequest estimates the input tokens of a chat request body (an
// OpenAI chat completion or an Anthropic message, as JSON) without
// decoding it: every string value is estimated as text, except the model
// name; an inline or linked image costs a flat amount; object keys count
// inside tool schemas, where the provider reads them; each message and
// tool adds its framing.
func EstimateRequest(body []byte) int64 {
	var tokens int64 = primingTokens
	depth := 0
	var lastKey []byte
	for i := 0; i < len(body); i++ {
		switch body[i] {
		case '{':
			depth++
			if depth == 3 {
				tokens += perItemTokens
			}
		case '[':
			depth++
		case '}', ']':
			depth--
		case '"':
			j := stringEnd(body, i+1)
			raw := body[i+1 : j]
			k := j + 1
			for k < len(body) && (body[k] == ' ' || body[k] == '\n' || body[k] == '\t' || body[k] == '\r') {
				k++
			}
			if k < len(body) && body[k] == ':' {
				lastKey = raw
				if depth >= schemaKeyDepth {
					tokens++
				}
				if depth == 1 && string(raw) == "tools" {
					tokens += toolsTokens
				}
			} else {
				tokens += valueTokens(lastKey, raw, depth)
			}
			i = j
		}
	}
	return tokens
}

func valueTokens(key, raw []byte, depth int) int64 {
	switch {
	case depth == 1 && string(key) == "model":
		return 0
	case (string(key) == "url" || string(key) == "data") && (len(raw) > 256 || hasPrefix(raw, "data:")):
		return imageTokens
	}
	return EstimateText(unsafeString(raw))
}

// stringEnd is the index of the quote closing the JSON string that starts
// at i, or len(b).
func stringEnd(b []byte, i int) int {
	for ; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i
		}
	}
	return len(b)
}

func hasPrefix(b []byte, p string) bool { return len(b) >= len(p) && string(b[:len(p)]) == p }

// unsafeString views b as a string without copying, for reading only.
func unsafeString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// EstimateOutput estimates the output tokens one streamed event carries:
// the text of its content, reasoning and tool-argument strings (OpenAI's
// content, reasoning_content and arguments; Anthropic's text, thinking
// and partial_json), its framing free.
func EstimateOutput(event []byte) int64 {
	var tokens int64
	var lastKey []byte
	for i := 0; i < len(event); i++ {
		if event[i] != '"' {
			continue
		}
		j := stringEnd(event, i+1)
		raw := event[i+1 : j]
		k := j + 1
		for k < len(event) && event[k] == ' ' {
			k++
		}
		switch {
		case k < len(event) && event[k] == ':':
			lastKey = raw
		case outputKey(lastKey):
			tokens += EstimateText(unsafeString(raw))
		}
		i = j
	}
	return tokens
}

func outputKey(k []byte) bool {
	switch string(k) {
	case "content", "text", "arguments", "reasoning_content", "reasoning", "thinking", "partial_json", "refusal":
		return true
	}
	return false
}
