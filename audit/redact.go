package audit

import (
	"regexp"
	"strings"
)

// secretPattern is one kind of credential that content logging removes.
// The patterns are compiled once, when the package loads, and tried in
// order: the specific key formats before the generic bearer and
// password=value shapes, so a key is named by its kind.
type secretPattern struct {
	// kind names the secret in the replacement and the record's redactions.
	kind string
	// hints are substrings of which one must occur for the pattern to be
	// tried at all; nil: always tried (case-insensitive patterns).
	hints []string
	re    *regexp.Regexp
	// group is the number of the submatch that is the secret, so that a
	// "Bearer " or "password=" prefix and any quotes stay; when several
	// groups from it on are alternatives, the one that matched is the
	// secret. 0: the whole match.
	group int
	// plausible, when set, rejects matches that look like words rather
	// than secrets (an identifier like sk-learn-pipeline-example, say).
	plausible func(secret string) bool
}

// secretPatterns are the credentials redacted from logged content.
var secretPatterns = []secretPattern{
	{kind: "private_key", hints: []string{"-----BEGIN"},
		// A block cut short by the size bound is still removed, to the end.
		re: regexp.MustCompile(`-----BEGIN[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----(?s:.*?)(?:-----END[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|\z)`)},
	{kind: "anthropic_api_key", hints: []string{"sk-ant-"},
		re: regexp.MustCompile(`\bsk-ant-[A-Za-z0-9_-]{20,}`), plausible: mixed},
	{kind: "openai_api_key", hints: []string{"sk-"},
		re: regexp.MustCompile(`\bsk-[A-Za-z0-9_-]{20,}`), plausible: mixed},
	{kind: "aws_access_key_id", hints: []string{"AKIA", "ASIA"},
		re: regexp.MustCompile(`\b(?:AKIA|ASIA)[0-9A-Z]{16}\b`)},
	{kind: "github_token", hints: []string{"ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"},
		re: regexp.MustCompile(`\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})\b`)},
	{kind: "google_api_key", hints: []string{"AIza"},
		re: regexp.MustCompile(`\bAIza[0-9A-Za-z_-]{35}`)},
	{kind: "slack_token", hints: []string{"xox"},
		re: regexp.MustCompile(`\bxox[abposr]-[A-Za-z0-9-]{10,}`)},
	{kind: "slack_webhook", hints: []string{"hooks.slack.com"},
		re: regexp.MustCompile(`https://hooks\.slack\.com/(?:services|workflows)/[A-Za-z0-9/_-]+`)},
	{kind: "jwt", hints: []string{"eyJ"},
		re: regexp.MustCompile(`\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*`)},
	{kind: "url_credentials", hints: []string{"://"},
		re: regexp.MustCompile(`\b[a-zA-Z][a-zA-Z0-9+.-]*://[^/\s:@]+:([^/\s@]+)@`), group: 1},
	{kind: "bearer_token",
		re: regexp.MustCompile(`(?i)\bbearer\s+([A-Za-z0-9._~+/-]{16,}=*)`), group: 1, plausible: tokenLike},
	{kind: "password",
		re:    regexp.MustCompile(`(?i)\b(?:[a-z0-9]+[_-])*(?:password|passwd|pwd|secret|secret_key|secret_access_key|api_key|apikey|access_token|refresh_token|auth_token)["']?\s*[=:]\s*(?:"([^"\n]+)"|'([^'\n]+)'|([^\s"'&,;]+))`),
		group: 1},
}

// redactSecrets replaces every secret in s with [REDACTED:kind] and counts
// what it replaced by kind into found.
func redactSecrets(s string, found map[string]int) string {
	for i := range secretPatterns {
		p := &secretPatterns[i]
		if p.hints != nil && !containsAny(s, p.hints) {
			continue
		}
		s = p.redact(s, found)
	}
	return s
}

func (p *secretPattern) redact(s string, found map[string]int) string {
	matches := p.re.FindAllStringSubmatchIndex(s, -1)
	if matches == nil {
		return s
	}
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

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
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
