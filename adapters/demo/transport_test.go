package demo

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// transportClient wraps h so the test learns when its ServeHTTP returns.
func transportClient(h http.HandlerFunc) (*http.Client, <-chan struct{}) {
	returned := make(chan struct{})
	wrapped := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer close(returned)
		h(w, r)
	})
	return &http.Client{Transport: &Transport{Handler: wrapped}}, returned
}

func TestTransportResponse(t *testing.T) {
	c, returned := transportClient(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Before", "1")
		w.WriteHeader(http.StatusTeapot)
		w.Header().Set("X-After", "1") // too late: headers are sent
		io.WriteString(w, "echo:"+string(b))
		w.(http.Flusher).Flush()
		io.WriteString(w, ":end")
	})
	resp, err := c.Post("http://x.invalid/", "text/plain", strings.NewReader("ping"))
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	waitReturned(t, returned)
	if err != nil || string(body) != "echo:ping:end" {
		t.Errorf("body = %q, %v", body, err)
	}
	if resp.StatusCode != http.StatusTeapot || resp.Header.Get("X-Before") != "1" || resp.Header.Get("X-After") != "" {
		t.Errorf("response = %d %v", resp.StatusCode, resp.Header)
	}
	if resp.Request == nil || resp.Request.URL.Host != "x.invalid" {
		t.Errorf("response.Request = %v", resp.Request)
	}
}

func TestTransportHandlerWritesNothing(t *testing.T) {
	c, returned := transportClient(func(http.ResponseWriter, *http.Request) {})
	resp, err := c.Get("http://x.invalid/")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	waitReturned(t, returned)
	if resp.StatusCode != http.StatusOK || len(body) != 0 || err != nil {
		t.Errorf("response = %d %q %v", resp.StatusCode, body, err)
	}
}

// Cancelling before the handler has written its headers fails the round
// trip, and the handler, woken by its context, returns.
func TestTransportCancelBeforeHeaders(t *testing.T) {
	c, returned := transportClient(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
		w.Write([]byte("too late"))
	})
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(20*time.Millisecond, cancel)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://x.invalid/", nil)
	resp, err := c.Do(req)
	if err == nil {
		resp.Body.Close()
		t.Fatal("round trip succeeded after cancel")
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error = %v, want context.Canceled", err)
	}
	waitReturned(t, returned)
}

// A handler blocked writing to a reader that does not read is released
// when the request is cancelled: no goroutine is left behind.
func TestTransportCancelReleasesBlockedWrite(t *testing.T) {
	writeErr := make(chan error, 1)
	c, returned := transportClient(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		_, err := w.Write(make([]byte, 1<<20)) // nobody reads this
		writeErr <- err
	})
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://x.invalid/", nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	select {
	case <-returned:
		t.Fatal("the handler returned while its write had no reader")
	case <-time.After(50 * time.Millisecond):
	}
	cancel()
	waitReturned(t, returned)
	if err := <-writeErr; err == nil {
		t.Error("the blocked write succeeded after cancel")
	}
	if _, err := resp.Body.Read(make([]byte, 1)); !errors.Is(err, context.Canceled) {
		t.Errorf("read after cancel = %v, want context.Canceled", err)
	}
}

// The demo model's stream, cancelled or abandoned part way, ends its handler.
func TestTransportStreamEnds(t *testing.T) {
	body := chatBody("demo", strings.Repeat("word ", 100), `,"stream":true`)
	tests := []struct {
		name string
		stop func(cancel context.CancelFunc, resp *http.Response)
		// wantRead is the error of a read after stopping.
		wantRead error
	}{
		{"cancel", func(cancel context.CancelFunc, _ *http.Response) { cancel() }, context.Canceled},
		{"close body", func(_ context.CancelFunc, resp *http.Response) { resp.Body.Close() }, io.ErrClosedPipe},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The delay between words is long: only stopping ends the stream.
			c, returned := client(t, time.Hour)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			resp := post(t, ctx, c, body)
			// Read part of the first chunk: the handler is still writing the
			// rest when the stream is stopped.
			buf := make([]byte, 64)
			if _, err := resp.Body.Read(buf); err != nil {
				t.Fatal(err)
			}
			tt.stop(cancel, resp)
			waitReturned(t, returned)
			var err error
			for err == nil {
				_, err = resp.Body.Read(buf)
			}
			if !errors.Is(err, tt.wantRead) {
				t.Errorf("read after stop = %v, want %v", err, tt.wantRead)
			}
		})
	}
}
