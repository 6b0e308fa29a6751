package main

import (
	"fmt"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"time"
)

// NewBareProxy returns the baseline the gateway is measured against: a
// plain httputil.ReverseProxy to upstream that flushes every write at once
// (FlushInterval -1, as a streaming LLM proxy must) and does nothing else.
// It gets the same connection pool settings as the gateway's OpenAI
// provider (adapters/openai.NewTransport), so that the difference measured
// is the gateway's work and not its pool size: with Go's default of two
// idle connections per host a proxy under load mostly measures dialing.
func NewBareProxy(upstream string) (*httputil.ReverseProxy, error) {
	target, err := url.Parse(upstream)
	if err != nil || target.Host == "" {
		return nil, fmt.Errorf("bare proxy: upstream %q is not a URL", upstream)
	}
	return &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
		},
		FlushInterval: -1,
		Transport: &http.Transport{
			DialContext: (&net.Dialer{
				Timeout:   10 * time.Second,
				KeepAlive: 30 * time.Second,
			}).DialContext,
			ForceAttemptHTTP2:     true,
			MaxIdleConns:          1024,
			MaxIdleConnsPerHost:   256,
			IdleConnTimeout:       90 * time.Second,
			ExpectContinueTimeout: time.Second,
		},
		ErrorLog: log.New(os.Stderr, "bare proxy: ", log.LstdFlags),
	}, nil
}
