package config

import (
	"os"
	"strings"
	"testing"
)

func TestTrustedProxiesMustBeNetworks(t *testing.T) {
	src := "server:\n  trusted_proxies: [10.0.0.0/8, 10.1.2.3]\naudit:\n  stdout: true\n"
	_, err := Parse("c.yaml", []byte(src), os.LookupEnv)
	if err == nil || !strings.Contains(err.Error(), "server.trusted_proxies[1]") || !strings.Contains(err.Error(), "10.0.0.0/8") {
		t.Errorf("error = %v", err)
	}
	cfg, err := Parse("c.yaml", []byte("server:\n  trusted_proxies: [10.0.0.0/8, \"::1/128\"]\naudit:\n  stdout: true\n"), os.LookupEnv)
	if err != nil || len(cfg.Server.TrustedProxies) != 2 {
		t.Errorf("valid networks: %v %v", cfg, err)
	}
}
