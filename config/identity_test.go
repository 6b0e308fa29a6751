package config

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Each mistake in the identity section is reported with its field path and
// what would be right.
func TestIdentityValidation(t *testing.T) {
	tests := []struct {
		name, src, path, says string
	}{
		{"no audience", "identity:\n  issuers:\n    - issuer: https://idp.example\n", "identity.issuers[0].audiences", "is required"},
		{"empty audience", "identity:\n  issuers:\n    - issuer: https://idp.example\n      audiences: [\"\"]\n", "identity.issuers[0].audiences", "is required"},
		{"no issuer", "identity:\n  issuers:\n    - audiences: [x]\n", "identity.issuers[0].issuer", "is required"},
		{"duplicate issuer", "identity:\n  issuers:\n    - issuer: https://a\n      audiences: [x]\n    - issuer: https://a\n      audiences: [x]\n", "identity.issuers[1].issuer", "declared twice"},
		{"HMAC", "identity:\n  issuers:\n    - issuer: https://a\n      audiences: [x]\n      algorithms: [HS256]\n", "identity.issuers[0].algorithms[0]", "HMAC and none are never accepted"},
		{"none", "identity:\n  issuers:\n    - issuer: https://a\n      audiences: [x]\n      algorithms: [none]\n", "identity.issuers[0].algorithms[0]", "not allowed"},
		{"issuer not a URL", "identity:\n  issuers:\n    - issuer: my-idp\n      audiences: [x]\n", "identity.issuers[0].issuer", "not an http(s) URL"},
		{"two key sources", "identity:\n  issuers:\n    - issuer: a\n      audiences: [x]\n      keys_file: k.json\n      jwks_url: https://a/keys\n", "identity.issuers[0].keys_file", "one key source"},
		{"leeway too long", "identity:\n  issuers:\n    - issuer: https://a\n      audiences: [x]\n      leeway: 1h\n", "identity.issuers[0].leeway", "between 0s and 5m"},
		{"minted algorithm", "identity:\n  tokens:\n    algorithm: RS256\n", "identity.tokens.algorithm", "ES256 or EdDSA"},
		{"minted lifetimes", "identity:\n  tokens:\n    default_lifetime: 2h\n    max_lifetime: 1h\n", "identity.tokens.default_lifetime", "longer than max_lifetime"},
		{"minted issuer clash", "identity:\n  tokens:\n    signing_key_file: k.pem\n    issuer: https://a\n  issuers:\n    - issuer: https://a\n      audiences: [x]\n", "identity.issuers[0].issuer", "also the issuer of gateway-minted tokens"},
		{"key expiry", "auth:\n  api_keys:\n    - name: k\n      subject: s\n      hash: sha256:" + strings.Repeat("a", 64) + "\n      expires: tomorrow\n", "auth.api_keys[0].expires", "RFC 3339"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { wantFieldError(t, minimal+tt.src, tt.path, tt.says) })
	}
}

// wantFieldError parses src and expects a problem at path that says says.
func wantFieldError(t *testing.T, src, path, says string) {
	t.Helper()
	_, err := parse(t, src, nil)
	for _, fe := range fieldErrors(t, err) {
		if fe.Path == path && strings.Contains(fe.Problem, says) {
			return
		}
	}
	t.Errorf("errors %v; want %s: ...%s...", err, path, says)
}

// Defaults fill an issuer and the minted tokens; relative paths follow the
// config file.
func TestIdentityDefaults(t *testing.T) {
	c := mustParse(t, minimal+"identity:\n  api_keys_file: keys.yaml\n  tokens:\n    signing_key_file: k.pem\n  issuers:\n    - issuer: https://idp.example\n      audiences: [gw]\n      keys_file: jwks.json\n", nil)
	is := c.Identity.Issuers[0]
	if is.Name != "https://idp.example" || strings.Join(is.Algorithms, ",") != "RS256,ES256,EdDSA" || is.Leeway.Std() != 30*time.Second ||
		is.RefreshInterval.Std() != 30*time.Second || is.Claims.Subject != "sub" || *is.Claims.SubjectPrefix != "https://idp.example#" || is.Claims.Groups != "groups" {
		t.Errorf("issuer defaults = %+v", is)
	}
	tk := c.Identity.Tokens
	if tk.Algorithm != "ES256" || tk.Issuer != "portcullis" || tk.MaxLifetime.Std() != time.Hour || tk.DefaultLifetime.Std() != 15*time.Minute {
		t.Errorf("token defaults = %+v", tk)
	}
	if !filepath.IsAbs(is.KeysFile) && filepath.Dir(c.Path) != "." || filepath.Base(c.Identity.APIKeysFile) != "keys.yaml" {
		t.Errorf("paths = %q %q", is.KeysFile, c.Identity.APIKeysFile)
	}
	empty := mustParse(t, minimal+"identity:\n  issuers:\n    - issuer: https://a\n      audiences: [x]\n      claims:\n        subject_prefix: \"\"\n", nil)
	if *empty.Identity.Issuers[0].Claims.SubjectPrefix != "" {
		t.Error("an explicit empty subject_prefix was replaced")
	}
}
