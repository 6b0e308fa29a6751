package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strings"
	"text/tabwriter"
)

// usageReportCommand prints GET /v1/usage/report of a running gateway as
// a table, or as the JSON it answered with --json.
func usageReportCommand(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("usage report", flag.ContinueOnError)
	fs.SetOutput(stderr)
	base := fs.String("url", envOr("PORTCULLIS_URL", "http://127.0.0.1:8080"), "the gateway's base URL (env PORTCULLIS_URL)")
	groupBy := fs.String("group-by", "", "split rows by these keys, comma-separated: identity, group, model, provider, day")
	from := fs.String("from", "", "first day, YYYY-MM-DD (default: the first of the month of --to)")
	to := fs.String("to", "", "last day, YYYY-MM-DD (default: today in the usage time zone)")
	subject := fs.String("subject", "", "another subject's usage (the policy must allow it)")
	group := fs.String("group", "", "a group's usage (the policy must allow it)")
	all := fs.Bool("all", false, "everyone's usage (the policy must allow it)")
	raw := fs.Bool("json", false, "print the gateway's JSON answer")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("usage report: unexpected argument %q", fs.Arg(0))
	}
	q := url.Values{}
	for name, v := range map[string]string{"group_by": *groupBy, "from": *from, "to": *to, "subject": *subject, "group": *group} {
		if v != "" {
			q.Set(name, v)
		}
	}
	if *all {
		q.Set("all", "true")
	}
	body, err := getGateway(*base, "/v1/usage/report?"+q.Encode(), 16<<20)
	if err != nil {
		return err
	}
	if *raw {
		_, err := stdout.Write(append(body, '\n'))
		return err
	}
	var rep struct {
		From    string           `json:"from"`
		To      string           `json:"to"`
		GroupBy []string         `json:"group_by"`
		Subject string           `json:"subject"`
		Group   string           `json:"group"`
		Rows    []map[string]any `json:"rows"`
		Totals  map[string]any   `json:"totals"`
	}
	if err := json.Unmarshal(body, &rep); err != nil {
		return fmt.Errorf("read the gateway's answer: %w", err)
	}
	who := "everyone"
	switch {
	case rep.Subject != "":
		who = rep.Subject
	case rep.Group != "":
		who = "group " + rep.Group
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "usage of %s, %s to %s\n", who, rep.From, rep.To)
	var head []string
	for _, k := range rep.GroupBy {
		head = append(head, strings.ToUpper(k))
	}
	head = append(head, "CALLS", "INPUT", "OUTPUT", "USD")
	fmt.Fprintln(tw, strings.Join(head, "\t"))
	line := func(r map[string]any, keys []string) {
		var cells []string
		for _, k := range keys {
			cells = append(cells, fmt.Sprint(r[k]))
		}
		num := func(k string) float64 { f, _ := r[k].(float64); return f }
		cells = append(cells, fmt.Sprintf("%.0f", num("calls")), fmt.Sprintf("%.0f", num("input_tokens")),
			fmt.Sprintf("%.0f", num("output_tokens")), fmt.Sprintf("%.6f", num("cost_usd")))
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	for _, r := range rep.Rows {
		line(r, rep.GroupBy)
	}
	if len(rep.GroupBy) > 0 {
		total := make([]string, len(rep.GroupBy))
		total[0] = "total"
		t := map[string]any{}
		for k, v := range rep.Totals {
			t[k] = v
		}
		for i, k := range rep.GroupBy {
			t[k] = total[i]
		}
		line(t, rep.GroupBy)
	}
	return tw.Flush()
}
