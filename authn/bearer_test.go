package authn

import (
	"net/http/httptest"
	"testing"
)

func TestBearerTokenSources(t *testing.T) {
	for _, tc := range []struct {
		name, authorization, apiKey, want string
	}{
		{"bearer", "Bearer k1", "", "k1"},
		{"bearer any case", "bearer  k1 ", "", "k1"},
		{"x-api-key", "", "k2", "k2"},
		{"bearer wins", "Bearer k1", "k2", "k1"},
		{"basic does not hide x-api-key", "Basic dXNlcjpwYXNz", "k2", "k2"},
		{"basic alone", "Basic dXNlcjpwYXNz", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			if tc.authorization != "" {
				r.Header.Set("Authorization", tc.authorization)
			}
			if tc.apiKey != "" {
				r.Header.Set("X-Api-Key", tc.apiKey)
			}
			if got := BearerToken(r); got != tc.want {
				t.Errorf("BearerToken = %q, want %q", got, tc.want)
			}
		})
	}
}
