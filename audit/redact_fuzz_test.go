package audit

import (
	"strings"
	"testing"
)

// Redaction takes any text a caller sends: it must not panic, must leave
// nothing a second pass would still remove, and must keep text without
// hints of a secret byte for byte.
func FuzzRedactSecrets(f *testing.F) {
	for _, seed := range []string{
		"my key is sk-proj-4fT9aQ2bX7LmN3pR8sV1wY6z",
		"Authorization: Bearer 9f8e7d6c5b4a3f2e1d0c9b8a",
		"password=hunter2&api_key='x1' DB_PASSWORD: \"a b\"",
		"-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----",
		"https://bob:s3cr3t@git.example.com eyJhbGciOiJub25lIn0.eyJzdWIiOiJhIn0.",
		"héllo wörld",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		found := map[string]int{}
		once := redactSecrets(s, found)
		if twice := redactSecrets(once, map[string]int{}); twice != once {
			t.Errorf("a second pass changed %q\n to %q", once, twice)
		}
		if len(found) == 0 && once != s {
			t.Errorf("text changed without a redaction: %q → %q", s, once)
		}
		if len(found) > 0 && !strings.Contains(once, "[REDACTED:") {
			t.Errorf("counted %v but nothing replaced in %q", found, once)
		}
	})
}
