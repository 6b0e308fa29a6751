package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"go.uber.org/zap"

	"portcullis/audit"
	"portcullis/config"
)

// auditOptions turns the audit section into the audit log's options.
func auditOptions(cfg *config.Config, log *zap.Logger) audit.Options {
	a := cfg.Audit
	key := []byte(a.CheckpointKey.Reveal())
	o := audit.Options{Stdout: a.Stdout, Logger: log.Named("audit")}
	if a.File != "" {
		so := sinkOptions("file", a.AuditSinkOptions)
		so.Path, so.CheckpointKey = a.File, key
		o.Sinks = append(o.Sinks, so)
	}
	for _, s := range a.Sinks {
		so := sinkOptions(s.Type, s.AuditSinkOptions)
		so.Path, so.CheckpointKey, so.URL = s.Path, key, s.URL
		so.BatchSize, so.FlushInterval, so.Retries, so.Timeout = s.BatchSize, s.FlushInterval.Std(), s.Retries, s.Timeout.Std()
		if len(s.Headers) > 0 {
			so.Headers = make(map[string]string, len(s.Headers))
			for k, v := range s.Headers {
				so.Headers[k] = v.Reveal()
			}
		}
		o.Sinks = append(o.Sinks, so)
	}
	return o
}

func sinkOptions(typ string, c config.AuditSinkOptions) audit.SinkOptions {
	return audit.SinkOptions{
		Type:        typ,
		Mode:        audit.Mode(c.OnFailure),
		QueueSize:   c.QueueSize,
		RotateBytes: c.RotateBytes,
		RotateEvery: c.RotateEvery.Std(),
		Fsync:       config.FsyncInterval(c.Fsync),
	}
}

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
