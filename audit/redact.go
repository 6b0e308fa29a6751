package audit

import (
	"regexp"
	"slices"
	"strings"
)

// secretPattern is one kind of credential that content logging removes.
// The patterns are compiled once, when the package loads, and tried in
// order: the specific key formats before the generic bearer and
// password=value shapes, so a key is named by its kind.
//
// Go's regular expressions run in linear time but not fast over long
// text, so a pattern is never run over the whole text: its hints (cheap
// substring searches) say where a match could begin, and the pattern,
// anchored there, reads only as far as the match goes. Text without a hint
// of a secret costs a few scans.
type secretPattern struct {
	// kind names the secret in the replacement and the record's redactions.
	kind string
	// hints are substrings of which every match holds one; lower-case when
	// fold is set, for they are then looked for in the lower-cased text.
	hints []string
	fold  bool
	// start says from where a match that holds the hint at at may begin;
	// nil: at the hint. A match begins at from or at a word's start between
	// from and the hint, and never right after a letter, digit or _.
	start func(s string, at int) int
	// re is the pattern, anchored by compile at the start of its input.
	re *regexp.Regexp
	// group is the number of the submatch that is the secret, so that a
	// "Bearer " or "password=" prefix and any quotes stay; when several
	// groups from it on are alternatives, the one that matched is the
	// secret. 0: the whole match.
	group int
	// plausible, when set, rejects matches that look like words rather
	// than secrets (an identifier like sk-learn-pipeline-example, say).
	plausible func(secret string) bool
}

// maxSecret bounds the text a match may span, but for private key blocks.
const maxSecret = 16 << 10

func compile(pattern string) *regexp.Regexp { return regexp.MustCompile(`^(?:` + pattern + `)`) }

// secretPatterns are the credentials redacted from logged content.
var secretPatterns = []secretPattern{
	{kind: "private_key", hints: []string{"-----BEGIN"},
		// A block cut short by the size bound is still removed, to the end.
		re: compile(`-----BEGIN[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----(?s:.*?)(?:-----END[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|\z)`)},
	{kind: "anthropic_api_key", hints: []string{"sk-ant-"},
		re: compile(`sk-ant-[A-Za-z0-9_-]{20,}`), plausible: mixed},
	{kind: "openai_api_key", hints: []string{"sk-"},
		re: compile(`sk-[A-Za-z0-9_-]{20,}`), plausible: mixed},
	{kind: "aws_access_key_id", hints: []string{"AKIA", "ASIA"},
		re: compile(`(?:AKIA|ASIA)[0-9A-Z]{16}\b`)},
	{kind: "github_token", hints: []string{"ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"},
		re: compile(`(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})\b`)},
	{kind: "google_api_key", hints: []string{"AIza"},
		re: compile(`AIza[0-9A-Za-z_-]{35}`)},
	{kind: "slack_token", hints: []string{"xox"},
		re: compile(`xox[abposr]-[A-Za-z0-9-]{10,}`)},
	{kind: "slack_webhook", hints: []string{"https://hooks.slack.com/"},
		re: compile(`https://hooks\.slack\.com/(?:services|workflows)/[A-Za-z0-9/_-]+`)},
	{kind: "jwt", hints: []string{"eyJ"},
		re: compile(`eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*`)},
	// The password of scheme://user:password@host, whatever the scheme.
	{kind: "url_credentials", hints: []string{"://"}, start: func(_ string, at int) int { return at + 1 },
		re: compile(`//[^/\s:@]+:([^/\s@]+)@`), group: 1},
	{kind: "bearer_token", hints: []string{"bearer"}, fold: true,
		re: compile(`(?i)bearer\s+([A-Za-z0-9._~+/-]{16,}=*)`), group: 1, plausible: tokenLike},
	{kind: "password", fold: true, start: wordStart,
		hints: []string{"password", "passwd", "pwd", "secret", "api_key", "apikey", "access_token", "refresh_token", "auth_token"},
		re:    compile(`(?i)(?:[a-z0-9]+[_-])*(?:password|passwd|pwd|secret|secret_key|secret_access_key|api_key|apikey|access_token|refresh_token|auth_token)["']?\s*[=:]\s*(?:"([^"\n]+)"|'([^'\n]+)'|([^\s"'&,;]+))`),
		group: 1},
}

// redactSecrets replaces every secret in s with [REDACTED:kind] and counts
// what it replaced by kind into found.
func redactSecrets(s string, found map[string]int) string {
	var lower string
	lowered := false
	for i := range secretPatterns {
		p := &secretPatterns[i]
		hay := s
		if p.fold {
			if !lowered {
				lower, lowered = asciiLower(s), true
			}
			hay = lower
		}
		matches := p.find(s, hay)
		if len(matches) == 0 {
			continue
		}
		if out := p.replace(s, matches, found); out != s {
			s, lowered = out, false
		}
	}
	return s
}

// find returns the pattern's matches in s, in order and not overlapping,
// looking for its hints in hay (s, or s lower-cased).
func (p *secretPattern) find(s, hay string) [][]int {
	var matches [][]int
	for _, h := range p.hints {
		for i := 0; i < len(hay); {
			j := strings.Index(hay[i:], h)
			if j < 0 {
				break
			}
			at := i + j
			i = at + 1
			from := at
			if p.start != nil {
				from = p.start(s, at)
			}
			if m := p.matchFrom(s, from, at); m != nil {
				matches = append(matches, m)
				i = max(i, m[1])
			}
		}
	}
	if len(p.hints) > 1 {
		slices.SortFunc(matches, func(a, b []int) int { return a[0] - b[0] })
		kept := matches[:0]
		for _, m := range matches {
			if len(kept) == 0 || m[0] >= kept[len(kept)-1][1] {
				kept = append(kept, m)
			}
		}
		matches = kept
	}
	return matches
}

// matchFrom tries the anchored pattern at from and at each later start of
// a word up to at (the hint), where a match may begin, and returns the
// first match with its indexes into s.
func (p *secretPattern) matchFrom(s string, from, at int) []int {
	for k := from; k <= max(from, at); k++ {
		if k > 0 && isWordByte(s[k-1]) {
			continue
		}
		to := len(s)
		if p.kind != "private_key" {
			to = min(to, k+maxSecret)
		}
		m := p.re.FindStringSubmatchIndex(s[k:to])
		if m == nil {
			continue
		}
		for j := range m {
			if m[j] >= 0 {
				m[j] += k
			}
		}
		return m
	}
	return nil
}

// replace puts [REDACTED:kind] in place of each plausible secret of
// matches, which are in order and do not overlap.
func (p *secretPattern) replace(s string, matches [][]int, found map[string]int) string {
	var b strings.Builder
	last := 0
	for _, m := range matches {
		start, end := m[0], m[1]
		for g := p.group; g > 0 && 2*g < len(m); g++ {
			if m[2*g] >= 0 {
				start, end = m[2*g], m[2*g+1]
				break
			}
		}
		if p.plausible != nil && !p.plausible(s[start:end]) {
			continue
		}
		b.WriteString(s[last:start])
		b.WriteString("[REDACTED:")
		b.WriteString(p.kind)
		b.WriteByte(']')
		last = end
		found[p.kind]++
	}
	if last == 0 {
		return s
	}
	b.WriteString(s[last:])
	return b.String()
}

// wordStart is where a name holding at may begin: after the last byte
// before it that is not a letter, digit, _ or -, at most 256 bytes back.
func wordStart(s string, at int) int {
	lo := max(at-256, 0)
	for at > lo && (isWordByte(s[at-1]) || s[at-1] == '-') {
		at--
	}
	return at
}

func isWordByte(c byte) bool {
	return c == '_' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

// asciiLower lower-cases the ASCII letters of s only, so that every byte
// stays where it was.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// mixed says a key-shaped string holds digits and letters, as random keys
// do and hyphenated words do not.
func mixed(s string) bool {
	return strings.ContainsAny(s, "0123456789") && strings.ContainsAny(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
}

// tokenLike says the word after "Bearer" is a token, not prose: tokens
// carry digits or the punctuation of base64 and JWTs.
func tokenLike(s string) bool {
	return strings.ContainsAny(s, "0123456789._~+/=-")
}
