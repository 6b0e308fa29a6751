package config

import (
	"os"
	"strings"
	"testing"
	"time"
)

const ssoKey = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="

// ssoSection is a valid sso section whose provider lines the cases extend.
func ssoSection(publicURL, provider string) string {
	return "sso:\n  public_url: " + publicURL + "\n  session:\n    keys: [" + ssoKey + "]\n  providers:\n    - name: okta\n      issuer: https://corp.okta.example\n      client_id: gw\n" + provider
}

// Each mistake in the sso section is reported with its field path and what
// would be right.
func TestSSOValidation(t *testing.T) {
	tests := []struct {
		name, src, path, says string
	}{
		{"no providers", "sso:\n  public_url: https://gw.example\n", "sso.providers", "nobody can sign in"},
		{"no public URL", "sso:\n  session:\n    keys: [" + ssoKey + "]\n  providers:\n    - name: a\n      issuer: https://a\n      client_id: x\n", "sso.public_url", "not the gateway's origin"},
		{"public URL with a path", ssoSection("https://gw.example/llm", ""), "sso.public_url", "no path"},
		{"plain http off loopback", ssoSection("http://gw.example", ""), "sso.public_url", "use https"},
		{"no session key", "sso:\n  public_url: https://gw.example\n  providers:\n    - name: a\n      issuer: https://a\n      client_id: x\n", "sso.session.keys", "is required"},
		{"short session key", "sso:\n  public_url: https://gw.example\n  session:\n    keys: [c2hvcnQ=]\n  providers:\n    - name: a\n      issuer: https://a\n      client_id: x\n", "sso.session.keys[0]", "is 5 bytes"},
		{"session key not base64", "sso:\n  public_url: https://gw.example\n  session:\n    keys: [\"not base64!\"]\n  providers:\n    - name: a\n      issuer: https://a\n      client_id: x\n", "sso.session.keys[0]", "not base64"},
		{"bad name", strings.Replace(ssoSection("https://gw.example", ""), "name: okta", "name: Okta Corp", 1), "sso.providers[0].name", "lowercase"},
		{"bad kind", ssoSection("https://gw.example", "      kind: keycloak\n"), "sso.providers[0].kind", "generic, okta, entra"},
		{"no client id", strings.Replace(ssoSection("https://gw.example", ""), "      client_id: gw\n", "", 1), "sso.providers[0].client_id", "is required"},
		{"no openid scope", ssoSection("https://gw.example", "      scopes: [email]\n"), "sso.providers[0].scopes", "must include openid"},
		{"subject from email", ssoSection("https://gw.example", "      claims:\n        subject: [email]\n"), "sso.providers[0].claims.subject", "must not identify anyone"},
		{"subject from preferred_username", ssoSection("https://gw.example", "      claims:\n        subject: [preferred_username]\n"), "sso.providers[0].claims.subject", "must not identify anyone"},
		{"cookie name", strings.Replace(ssoSection("https://gw.example", ""), "  session:\n", "  session:\n    cookie_name: \"a b\"\n", 1), "sso.session.cookie_name", "not a cookie name"},
		{"lifetime", strings.Replace(ssoSection("https://gw.example", ""), "  session:\n", "  session:\n    lifetime: 2000h\n", 1), "sso.session.lifetime", "between 0s and 720h"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { wantFieldError(t, minimal+tt.src, tt.path, tt.says) })
	}
}

// The defaults follow the IdP's kind: Entra ID identifies people by tenant
// and object id, Okta asks for the groups scope.
func TestSSODefaults(t *testing.T) {
	c := mustParse(t, minimal+ssoSection("https://gw.example/", "    - name: entra\n      kind: entra\n      issuer: https://login.microsoftonline.example/t/v2.0\n      client_id: gw\n      client_secret: s3cret\n    - name: dex\n      kind: generic\n      issuer: http://127.0.0.1:5556/dex\n      client_id: gw\n      claims:\n        subject: [email]\n      trust_email: true\n"), nil)
	s := c.SSO
	if s.PublicURL != "https://gw.example" || !s.SecureCookies() || s.Session.Lifetime.Std() != 12*time.Hour || s.Session.RefreshBefore.Std() != time.Minute || s.Session.CookieName != "portcullis_session" {
		t.Errorf("session defaults = %+v", s.Session)
	}
	okta, entra, dex := s.Providers[0], s.Providers[1], s.Providers[2]
	if okta.Kind != "generic" || okta.DisplayName != "okta" || strings.Join(okta.Claims.Subject, ",") != "sub" || *okta.Claims.SubjectPrefix != "https://corp.okta.example#" {
		t.Errorf("generic defaults = %+v", okta)
	}
	if strings.Join(entra.Claims.Subject, ",") != "tid,oid" || strings.Join(entra.Scopes, " ") != "openid email profile offline_access" || entra.ClientSecret.String() != "[redacted]" {
		t.Errorf("entra defaults = %+v", entra)
	}
	if strings.Join(dex.Claims.Subject, ",") != "email" {
		t.Errorf("trust_email lets email identify people: %+v", dex.Claims)
	}
	okta2 := mustParse(t, minimal+ssoSection("http://127.0.0.1:8080", "      kind: okta\n"), nil).SSO
	if strings.Join(okta2.Providers[0].Scopes, " ") != "openid email profile offline_access groups" || okta2.SecureCookies() {
		t.Errorf("okta on loopback = %+v", okta2)
	}
}

// The commented sso block of config.example.yaml loads once uncommented.
func TestExampleSSOBlock(t *testing.T) {
	src, err := os.ReadFile("../config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	_, block, found := strings.Cut(string(src), "\n# sso:\n")
	if !found {
		t.Fatal("config.example.yaml has no commented sso block")
	}
	var lines []string
	for _, l := range strings.Split("# sso:\n"+block, "\n") {
		if !strings.HasPrefix(l, "#") {
			break
		}
		lines = append(lines, strings.TrimPrefix(strings.TrimPrefix(l, "#"), " "))
	}
	env := map[string]string{"PORTCULLIS_SESSION_KEY": ssoKey, "OKTA_CLIENT_ID": "gw", "OKTA_CLIENT_SECRET": "s", "ENTRA_TENANT_ID": "t",
		"ENTRA_CLIENT_ID": "gw", "ENTRA_CLIENT_SECRET": "s"}
	c := mustParse(t, minimal+strings.Join(lines, "\n")+"\n", env)
	if len(c.SSO.Providers) != 2 || c.SSO.Providers[1].GroupNames["0b1d2c3e-0000-4000-8000-000000000001"] != "engineering" ||
		strings.Join(c.SSO.Providers[1].Claims.Subject, ",") != "tid,oid" {
		t.Errorf("sso block = %+v", c.SSO)
	}
}
