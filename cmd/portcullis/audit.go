package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"portcullis/audit"
)

// auditCommand runs `portcullis audit verify [--key-env VAR] FILE…`.
func auditCommand(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "verify" {
		return errUsage
	}
	fs := newFlagSet("audit verify", stderr)
	keyEnv := fs.String("key-env", "", "name of the environment `variable` holding audit.checkpoint_key, to check checkpoint signatures")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return errUsage
	}
	var key []byte
	if *keyEnv != "" {
		v, ok := os.LookupEnv(*keyEnv)
		if !ok || v == "" {
			return fmt.Errorf("audit verify: --key-env %s: the variable is not set", *keyEnv)
		}
		key = []byte(v)
	}
	failed := 0
	for _, r := range audit.VerifyFiles(fs.Args(), key) {
		if !r.OK() {
			failed++
			fmt.Fprintf(stdout, "%s: BROKEN: %s\n", r.Path, r.Problem)
			continue
		}
		fmt.Fprintf(stdout, "%s: ok: %d records (%d calls), chain intact, last hash %s", r.Path, r.Records, r.Calls, r.LastHash)
		if r.Checkpoint != "" {
			fmt.Fprintf(stdout, "; %s", r.Checkpoint)
		}
		fmt.Fprintln(stdout)
	}
	if failed > 0 {
		return errors.New("audit verify: " + fmt.Sprint(failed) + " of " + fmt.Sprint(fs.NArg()) + " files failed")
	}
	return nil
}
