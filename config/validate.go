package config

import (
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strings"
)

// HashPrefix starts every stored API key hash.
const HashPrefix = "sha256:"

// validate checks what decoding cannot: required fields, references between
// sections, and values that parse but make no sense.
func (c *Config) validate(l *loader) []FieldError {
	l.errs = nil
	if _, _, err := net.SplitHostPort(c.Server.Listen); err != nil {
		l.fail("server.listen", "%q is not host:port; write it like 127.0.0.1:8080 or :8080", c.Server.Listen)
	}
	if c.Metrics.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Metrics.Listen); err != nil {
			l.fail("metrics.listen", "%q is not host:port; write it like 127.0.0.1:9090, or leave it out to serve no metrics", c.Metrics.Listen)
		}
	}
	for i, cidr := range c.Server.TrustedProxies {
		if _, err := netip.ParsePrefix(cidr); err != nil {
			l.fail(fmt.Sprintf("server.trusted_proxies[%d]", i), "%q is not a network; write it like 10.0.0.0/8 or 192.0.2.7/32", cidr)
		}
	}
	if c.Server.MaxBodyBytes < 0 {
		l.fail("server.max_body_bytes", "%d is negative; give a size in bytes such as 10485760 (10 MiB)", c.Server.MaxBodyBytes)
	}
	if c.Server.ShutdownGrace < 0 {
		l.fail("server.shutdown_grace", "must not be negative; write it like 30s")
	}
	if c.Server.ReadHeaderTimeout < 0 {
		// net/http reads a negative timeout as none at all.
		l.fail("server.read_header_timeout", "must not be negative; write it like 10s")
	}
	if c.Policy.Reload != "watch" && c.Policy.Reload != "signal" {
		l.fail("policy.reload", "%q is not a reload mode; use watch (on file changes and SIGHUP) or signal (SIGHUP only)", c.Policy.Reload)
	}
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, c.Log.Level) {
		l.fail("log.level", "%q is not a level; use debug, info, warn or error", c.Log.Level)
	}

	providers := map[string]bool{}
	for i, p := range c.Providers {
		path := fmt.Sprintf("providers[%d]", i)
		switch {
		case p.Name == "":
			l.fail(path+".name", "is required; name the provider so models can refer to it, for example openai")
		case providers[p.Name]:
			l.fail(path+".name", "%q is used by another provider; provider names must be unique", p.Name)
		}
		providers[p.Name] = true
		if !slices.Contains(ProviderTypes, p.Type) {
			l.fail(path+".type", "%q is not a provider type; use one of %s", p.Type, strings.Join(ProviderTypes, ", "))
		}
		if p.Type == "bedrock" && p.BaseURL == "" {
			l.fail(path+".base_url", "is required for bedrock: the regional runtime endpoint, for example https://bedrock-runtime.us-east-1.amazonaws.com")
		} else if p.Type != "demo" && slices.Contains(ProviderTypes, p.Type) {
			if u, err := url.Parse(p.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				l.fail(path+".base_url", "%q is not an http(s) URL; write the API root, for example https://api.openai.com/v1", p.BaseURL)
			}
		}
		if p.APIVersion != "" && p.Type != "azure" {
			l.fail(path+".api_version", "is only used by azure providers; remove it")
		}
		if p.Type == "demo" && (p.BaseURL != "" || p.APIKey != "") {
			l.fail(path, "the demo provider runs in process and takes neither base_url nor api_key; remove them or use type openai")
		}
	}

	c.validateModels(l, providers)

	hashes := map[string]bool{}
	for i, k := range c.Auth.APIKeys {
		path := fmt.Sprintf("auth.api_keys[%d]", i)
		if k.Name == "" {
			l.fail(path+".name", "is required; it identifies the key in audit records")
		}
		if k.Subject == "" {
			l.fail(path+".subject", "is required; it is the identity the key stands for")
		}
		if !validHash(k.Hash) {
			l.fail(path+".hash", "must be %q followed by 64 hex digits; `portcullis keys generate` prints it", HashPrefix)
		} else if hashes[k.Hash] {
			l.fail(path+".hash", "is the same as another key's; each key must be distinct")
		}
		hashes[k.Hash] = true
	}
	c.validateIdentity(l)
	c.validateAudit(l)
	c.validateSSO(l)
	c.validateTracing(l)
	c.validateUsage(l)
	return l.errs
}

func (c *Config) providerNames() []string {
	names := make([]string, 0, len(c.Providers))
	for _, p := range c.Providers {
		names = append(names, p.Name)
	}
	if len(names) == 0 {
		return []string{"(none declared: add one under providers)"}
	}
	return names
}

func validHash(h string) bool {
	hexPart, ok := strings.CutPrefix(h, HashPrefix)
	if !ok || len(hexPart) != 64 {
		return false
	}
	_, err := hex.DecodeString(hexPart)
	return err == nil
}

// ProviderDisabled reports whether the provider at index i is switched off
// because its api_key was written in the file but expanded to nothing, and
// says why. A provider without an api_key line (a local vLLM, say) is enabled.
func (c *Config) ProviderDisabled(i int) (bool, string) {
	p := c.Providers[i]
	if p.Type == "demo" || p.APIKey != "" || !p.keyDeclared {
		return false, ""
	}
	return true, fmt.Sprintf("providers[%d].api_key is empty", i)
}

// LoopbackListen reports whether the listen address only accepts local
// connections.
func (c *Config) LoopbackListen() bool {
	host, _, err := net.SplitHostPort(c.Server.Listen)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
