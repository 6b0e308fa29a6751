package audit

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// webhookTarget POSTs batches of sealed lines as NDJSON to a SIEM or log
// collector. Its chain starts at Genesis each time the gateway starts and
// runs across batches, so the receiver can check order and completeness.
type webhookTarget struct {
	o      SinkOptions
	client *http.Client
	chain  chain
	buf    []byte
}

func newWebhook(o SinkOptions) (*webhookTarget, error) {
	u, err := url.Parse(o.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("open audit webhook: %q is not an http(s) URL", o.URL)
	}
	if o.Timeout == 0 {
		o.Timeout = 10 * time.Second
	}
	if o.Retries == 0 {
		o.Retries = 3
	}
	return &webhookTarget{o: o, client: &http.Client{Timeout: o.Timeout}, chain: chain{prev: Genesis}}, nil
}

// name leaves out the URL's query and user info, which may hold a token.
func (t *webhookTarget) name() string {
	u, _ := url.Parse(t.o.URL)
	return "webhook " + u.Scheme + "://" + u.Host + u.Path
}

func (t *webhookTarget) write(bodies [][]byte) (int, error) {
	before := t.chain.prev
	t.buf = t.buf[:0]
	for _, b := range bodies {
		t.buf = t.chain.seal(t.buf, b)
		t.buf = append(t.buf, '\n')
	}
	backoff := 100 * time.Millisecond
	var err error
	for try := 0; ; try++ {
		if err = t.post(); err == nil {
			return len(bodies), nil
		}
		if t.o.Retries < 0 || try >= t.o.Retries {
			break
		}
		time.Sleep(backoff)
		backoff = min(backoff*2, 5*time.Second)
	}
	// The batch is retried or dropped as a whole: seal it again next time.
	t.chain.prev = before
	return 0, err
}

func (t *webhookTarget) post() error {
	ctx, cancel := context.WithTimeout(context.Background(), t.o.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.o.URL, bytes.NewReader(t.buf))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	for k, v := range t.o.Headers {
		req.Header.Set(k, v)
	}
	resp, err := t.client.Do(req)
	if err != nil {
		return fmt.Errorf("post: %w", err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("post: HTTP %d", resp.StatusCode)
	}
	return nil
}

func (t *webhookTarget) idle()        {}
func (t *webhookTarget) close() error { t.client.CloseIdleConnections(); return nil }
