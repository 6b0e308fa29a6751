// Command portcullis is the Portcullis gateway: an identity-aware gateway
// in front of LLM providers.
//
//	portcullis serve --config FILE           run the gateway
//	portcullis config check --config FILE    validate a configuration
//	portcullis keys generate --subject S --group G...
//	                                         make a new API key
//	portcullis keys generate|list|revoke --file F
//	                                         manage the keys file
//	portcullis tokens mint|rotate-key --config FILE
//	                                         sign a gateway token; rotate its key
//	portcullis policy test [DIR]             run the Rego policy tests
//	portcullis policy eval --input FILE [--explain] [DIR]
//	                                         explain a decision
//	portcullis policy check [DIR]            compile in strict mode
//	portcullis audit verify FILE...          check audit files' hash chains
//	portcullis version                       print the version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	// usage.time_zone works on hosts and images without a zoneinfo folder.
	_ "time/tzdata"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3".
var version = ""

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usageText = `usage: portcullis <command> [flags]

commands:
  serve --config FILE                   run the gateway
  config check --config FILE            validate a configuration file
  keys generate --subject S [--group G]... [--name N]
                                        print a new API key and its config entry
  keys generate|list|revoke --file F    manage the keys file (docs/identity.md)
  tokens mint --subject S [--group G]... [--model M]... [--lifetime D]
                                        sign a short-lived gateway token
  tokens rotate-key                     start signing with a new key
  policy test [DIR]                     run the policy tests (default DIR: policies)
  policy eval --input FILE [--explain] [DIR]
                                        print the decision for an input document
  policy check [DIR]                    compile the policy in strict mode
  audit verify [--key-env VAR] FILE...  check the hash chain of audit files, oldest first
  usage [--url URL] [--json]            show your usage against your budgets (key from PORTCULLIS_API_KEY)
  usage report [--group-by K,...] [--from DAY] [--to DAY] [--subject S | --group G | --all] [--url URL] [--json]
                                        usage by identity, group, model, provider, day (GET /v1/usage/report)
  version                               print the version
`

// errUsage marks a command line that could not be understood.
var errUsage = errors.New("usage")

func run(args []string, stdout, stderr io.Writer) int {
	err := dispatch(args, stdout, stderr)
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errUsage), errors.Is(err, flag.ErrHelp):
		fmt.Fprint(stderr, usageText)
		return 2
	case errors.As(err, new(loggedError)):
		return 1
	default:
		fmt.Fprintln(stderr, "portcullis:", err)
		return 1
	}
}

func dispatch(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errUsage
	}
	switch cmd, rest := args[0], args[1:]; {
	case cmd == "serve":
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
		defer stop()
		// The first signal starts a graceful shutdown; a second one
		// (Ctrl-C again) gets Go's default behaviour and ends the process.
		context.AfterFunc(ctx, stop)
		return serve(ctx, rest, stderr)
	case cmd == "config" && len(rest) > 0 && rest[0] == "check":
		return configCheck(rest[1:], stdout, stderr)
	case cmd == "keys":
		return keysCommand(rest, stdout, stderr)
	case cmd == "tokens":
		return tokensCommand(rest, stdout, stderr)
	case cmd == "policy" && len(rest) > 0 && rest[0] == "test":
		return policyTest(rest[1:], stdout, stderr)
	case cmd == "policy" && len(rest) > 0 && rest[0] == "eval":
		return policyEval(rest[1:], stdout, stderr)
	case cmd == "policy" && len(rest) > 0 && rest[0] == "check":
		return policyCheck(rest[1:], stdout, stderr)
	case cmd == "audit":
		return auditCommand(rest, stdout, stderr)
	case cmd == "usage":
		return usageCommand(rest, stdout, stderr)
	case cmd == "version" || cmd == "--version":
		fmt.Fprintln(stdout, "portcullis", versionString())
		return nil
	case cmd == "help" || cmd == "-h" || cmd == "--help":
		fmt.Fprint(stdout, usageText)
		return nil
	default:
		return errUsage
	}
}

func versionString() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}
