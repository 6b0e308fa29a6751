package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"go.uber.org/zap"

	"portcullis/authn"
	"portcullis/authz"
	"portcullis/config"
)

// configCheck validates a configuration without serving.
func configCheck(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("config check", stderr)
	path := fs.String("config", "config.yaml", "configuration `file`")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := config.Load(*path)
	if err != nil {
		return err
	}
	// Check what serve would refuse at start-up, short of listening.
	if err := checkDemoKeys(cfg, zap.NewNop()); err != nil {
		return err
	}
	policy, err := authz.New(context.Background(), authz.Options{Dir: cfg.Policy.Dir, RequireTests: cfg.Policy.RequireTests})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "policy: the files in %s compile (revision %s)\n", cfg.Policy.Dir, policy.Revision())
	enabled := 0
	for i := range cfg.Providers {
		if off, why := cfg.ProviderDisabled(i); off {
			fmt.Fprintf(stdout, "note: provider %s is disabled: %s\n", cfg.Providers[i].Name, why)
			continue
		}
		enabled++
	}
	fmt.Fprintf(stdout, "%s: ok (%d providers, %d enabled; %d models; %d API keys)\n",
		cfg.Path, len(cfg.Providers), enabled, len(cfg.Models), len(cfg.Auth.APIKeys))
	return nil
}

// stringList is a repeatable flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

// keysGenerate prints a new API key once, with the configuration entry that
// holds only its hash.
func keysGenerate(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("keys generate", stderr)
	subject := fs.String("subject", "", "the identity's subject (required)")
	name := fs.String("name", "", "the key's name in audit records (default: the subject)")
	var groups stringList
	fs.Var(&groups, "group", "a group of the identity (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *subject == "" {
		return errors.New("keys generate: --subject is required")
	}
	if *name == "" {
		*name = *subject
	}
	key, hash := authn.GenerateKey()
	fmt.Fprintf(stdout, "# New API key for %s. It is shown only this once; the configuration keeps only its hash.\n", *subject)
	fmt.Fprintf(stdout, "# %s\n", key)
	fmt.Fprintln(stdout, "# Add this entry under auth.api_keys:")
	fmt.Fprintf(stdout, "- name: %s\n  hash: %s\n  subject: %s\n", strconv.Quote(*name), hash, strconv.Quote(*subject))
	if len(groups) > 0 {
		quoted := make([]string, len(groups))
		for i, g := range groups {
			quoted[i] = strconv.Quote(g)
		}
		fmt.Fprintf(stdout, "  groups: [%s]\n", strings.Join(quoted, ", "))
	}
	return nil
}
