package authn

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// FuzzSessionCookie feeds arbitrary session cookies to the reader: it must
// never panic, and nothing but a value the gateway sealed may open.
// Authentication is what keeps the rest out; a success of the fuzzer
// would be a forgery of AES-GCM, so this mostly checks the framing.
func FuzzSessionCookie(f *testing.F) {
	seal, err := newSealer([][]byte{[]byte("0123456789abcdef0123456789abcdef")})
	if err != nil {
		f.Fatal(err)
	}
	jar := &cookieJar{sealer: seal}
	const name = "portcullis_session"
	rec := httptest.NewRecorder()
	sealed, err := jar.set(rec, httptest.NewRequest(http.MethodGet, "/", nil), name, "/", []byte(`{"sid":"x"}`), time.Now().Add(time.Hour))
	if err != nil {
		f.Fatal(err)
	}
	big, err := jar.set(rec, httptest.NewRequest(http.MethodGet, "/", nil), name, "/", []byte(strings.Repeat("g", 5000)), time.Now().Add(time.Hour))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sealed, "")
	f.Add(big[:cookiePart+2], big[cookiePart+2:])
	f.Add("1.", "")
	f.Add("2.AQID", "BAUG")
	f.Add("16."+strings.Repeat("A", 60), "")
	f.Fuzz(func(t *testing.T, first, second string) {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.AddCookie(&http.Cookie{Name: name, Value: first, Quoted: false})
		r.AddCookie(&http.Cookie{Name: name + "_1", Value: second})
		joined, ok, err := jar.read(r, name)
		if !ok || err != nil {
			return
		}
		// The key is fixed, so the seeds sealed in another fuzzing process
		// open too; anything else opening would be a forgery.
		if plain, err := jar.open(name, joined); err == nil && string(plain) != `{"sid":"x"}` && string(plain) != strings.Repeat("g", 5000) {
			t.Fatalf("a value the gateway never sealed opened: %q", joined)
		}
	})
}

// FuzzSafeReturnTo holds the return-to check to its promise: whatever comes
// in, what comes out is a path on this gateway.
func FuzzSafeReturnTo(f *testing.F) {
	for _, s := range []string{"/portal/", "//evil", "/\\evil", "/%2F%2Fevil", "https://evil/", "/a?b=c#d", "/%5c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, rd string) {
		got := SafeReturnTo(rd)
		if got != rd && got != HomePath {
			t.Fatalf("SafeReturnTo(%q) = %q", rd, got)
		}
		u, err := url.Parse(got)
		if err != nil || u.Host != "" || u.Scheme != "" || !strings.HasPrefix(got, "/") || strings.HasPrefix(got, "//") || strings.Contains(got, "\\") {
			t.Fatalf("SafeReturnTo(%q) = %q, which may leave the gateway", rd, got)
		}
		// What a browser makes of it after decoding must stay local too.
		if dec, err := url.PathUnescape(got); err == nil && (strings.HasPrefix(dec, "//") || strings.Contains(dec, "\\")) {
			t.Fatalf("SafeReturnTo(%q) = %q decodes to %q", rd, got, dec)
		}
	})
}
