package main

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"portcullis/authn"
	"portcullis/config"
)

// keysCommand runs `portcullis keys generate|list|revoke`. Without --file,
// generate prints an entry for auth.api_keys as it always did; with --file
// (or identity.api_keys_file of --config) the keys file is updated, and the
// gateway picks the change up within seconds.
func keysCommand(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errUsage
	}
	switch args[0] {
	case "generate":
		if !slices.ContainsFunc(args[1:], func(a string) bool {
			return a == "--file" || a == "-file" || strings.HasPrefix(a, "--file=") || strings.HasPrefix(a, "-file=") ||
				a == "--config" || a == "-config" || strings.HasPrefix(a, "--config=") || strings.HasPrefix(a, "-config=")
		}) {
			return keysGenerate(args[1:], stdout, stderr)
		}
		return keysGenerateFile(args[1:], stdout, stderr)
	case "list":
		return keysList(args[1:], stdout, stderr)
	case "revoke":
		return keysRevoke(args[1:], stdout, stderr)
	}
	return errUsage
}

// keysFilePath resolves the keys file from --file or from the config's
// identity.api_keys_file.
func keysFilePath(file, cfgPath string) (string, error) {
	if file != "" {
		return file, nil
	}
	if cfgPath == "" {
		return "", errors.New("give the keys file with --file, or a config whose identity.api_keys_file names it with --config")
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		return "", err
	}
	if cfg.Identity.APIKeysFile == "" {
		return "", fmt.Errorf("%s does not set identity.api_keys_file", cfg.Path)
	}
	return cfg.Identity.APIKeysFile, nil
}

// keysGenerateFile adds a new key to the keys file and prints the key once.
func keysGenerateFile(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("keys generate", stderr)
	file := fs.String("file", "", "the keys `file` to add the key to")
	cfgPath := fs.String("config", "", "configuration `file` whose identity.api_keys_file is used")
	subject := fs.String("subject", "", "the identity's subject (required)")
	name := fs.String("name", "", "the key's name in audit records (default: the subject)")
	description := fs.String("description", "", "what the key is for")
	ttl := fs.Duration("ttl", 0, "the key expires after this long, like 720h (default: never)")
	expires := fs.String("expires", "", "the key expires at this RFC 3339 time")
	var groups, models stringList
	fs.Var(&groups, "group", "a group of the identity (repeatable)")
	fs.Var(&models, "model", "narrow the key to this model (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *subject == "" {
		return errors.New("keys generate: --subject is required")
	}
	if *name == "" {
		*name = *subject
	}
	now := time.Now().UTC()
	switch {
	case *ttl != 0 && *expires != "":
		return errors.New("keys generate: give --ttl or --expires, not both")
	case *ttl < 0:
		return errors.New("keys generate: --ttl must be positive")
	case *ttl > 0:
		*expires = now.Add(*ttl).Format(time.RFC3339)
	case *expires != "":
		if _, err := time.Parse(time.RFC3339, *expires); err != nil {
			return fmt.Errorf("keys generate: --expires %q is not an RFC 3339 time like 2026-12-31T23:59:59Z", *expires)
		}
	}
	path, err := keysFilePath(*file, *cfgPath)
	if err != nil {
		return fmt.Errorf("keys generate: %w", err)
	}
	kf, err := config.LoadKeysFile(path)
	if err != nil {
		return err
	}
	for _, k := range kf.Keys {
		if k.Name == *name && k.Revoked == "" {
			return fmt.Errorf("keys generate: %s already has an active key named %q; revoke it or choose another --name", path, *name)
		}
	}
	key, hash := authn.GenerateKey()
	kf.Keys = append(kf.Keys, config.FileKey{
		APIKey: config.APIKey{
			Name: *name, Hash: hash, Subject: *subject, Groups: groups,
			Expires: *expires, Models: models, Description: *description,
		},
		Created: now.Format(time.RFC3339),
	})
	if err := kf.Save(path); err != nil {
		return fmt.Errorf("keys generate: %w", err)
	}
	fmt.Fprintf(stdout, "# New API key %q for %s, added to %s. It is shown only this once; the file keeps only its hash.\n", *name, *subject, path)
	fmt.Fprintln(stdout, key)
	return nil
}

// keysList prints the keys of the keys file with their state.
func keysList(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("keys list", stderr)
	file := fs.String("file", "", "the keys `file`")
	cfgPath := fs.String("config", "", "configuration `file` whose identity.api_keys_file is used")
	if err := fs.Parse(args); err != nil {
		return err
	}
	path, err := keysFilePath(*file, *cfgPath)
	if err != nil {
		return fmt.Errorf("keys list: %w", err)
	}
	kf, err := config.LoadKeysFile(path)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSUBJECT\tGROUPS\tMODELS\tEXPIRES\tSTATE\tDESCRIPTION")
	now := time.Now()
	for _, k := range kf.Keys {
		state := "active"
		if exp, err := time.Parse(time.RFC3339, k.Expires); err == nil && !now.Before(exp) {
			state = "expired"
		}
		if k.Revoked != "" {
			state = "revoked " + k.Revoked
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", k.Name, k.Subject, dash(strings.Join(k.Groups, ",")),
			dash(strings.Join(k.Models, ",")), dash(k.Expires), state, dash(k.Description))
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// keysRevoke marks a key of the keys file revoked; the gateway refuses it
// once it has re-read the file (within seconds).
func keysRevoke(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("keys revoke", stderr)
	file := fs.String("file", "", "the keys `file`")
	cfgPath := fs.String("config", "", "configuration `file` whose identity.api_keys_file is used")
	name := fs.String("name", "", "the name of the key to revoke (required)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *name == "" {
		return errors.New("keys revoke: --name is required")
	}
	path, err := keysFilePath(*file, *cfgPath)
	if err != nil {
		return fmt.Errorf("keys revoke: %w", err)
	}
	kf, err := config.LoadKeysFile(path)
	if err != nil {
		return err
	}
	revoked := 0
	for i := range kf.Keys {
		if kf.Keys[i].Name == *name && kf.Keys[i].Revoked == "" {
			kf.Keys[i].Revoked = time.Now().UTC().Format(time.RFC3339)
			revoked++
		}
	}
	if revoked == 0 {
		return fmt.Errorf("keys revoke: %s has no active key named %s", path, strconv.Quote(*name))
	}
	if err := kf.Save(path); err != nil {
		return fmt.Errorf("keys revoke: %w", err)
	}
	fmt.Fprintf(stdout, "revoked %q in %s\n", *name, path)
	return nil
}
