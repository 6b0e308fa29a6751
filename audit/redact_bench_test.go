package audit

import (
	"strings"
	"testing"
)

// BenchmarkRedactSecrets measures redaction of about 40 KiB with two
// secrets in it, what a log_content record at the default bound holds:
// plain prose, and prose whose every sentence holds a hint of a secret
// (bearer, password), the worst case.
func BenchmarkRedactSecrets(b *testing.B) {
	secrets := " token sk-proj-4fT9aQ2bX7LmN3pR8sV1wY6z password=hunter2 "
	for _, tc := range []struct{ name, para string }{
		{"prose", "Name the three primary colors and explain how a task-management app stores them. "},
		{"hints-everywhere", "The bearer of this note asked for the password policy and a task-management API. "},
	} {
		b.Run(tc.name, func(b *testing.B) {
			text := strings.Repeat(tc.para, 400) + secrets + strings.Repeat(tc.para, 100)
			b.SetBytes(int64(len(text)))
			b.ReportAllocs()
			for b.Loop() {
				if out := redactSecrets(text, map[string]int{}); strings.Contains(out, "hunter2") {
					b.Fatal("not redacted")
				}
			}
		})
	}
}
