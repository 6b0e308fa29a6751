package demo

import (
	"context"
	"io"
	"net/http"
	"sync"
)

// Transport carries requests to an http.Handler in the same process, with
// the response streamed through a pipe, so the demo model takes exactly the
// path a remote upstream takes (flushes, cancellation and all) without a
// socket.
type Transport struct {
	Handler http.Handler
}

var _ http.RoundTripper = (*Transport)(nil)

// RoundTrip runs the handler and returns as soon as it has written its
// headers; the body streams while the handler runs. Closing the body or
// cancelling the request's context ends the handler's writes.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	pr, pw := io.Pipe()
	rw := &pipeWriter{header: http.Header{}, body: pw, ready: make(chan struct{})}
	// A cancelled request stops the body the way a dropped connection
	// would: the handler's writes fail (waking one blocked on a write), and
	// the reader gets the context's error, as from a real transport.
	stop := context.AfterFunc(req.Context(), func() { pw.CloseWithError(req.Context().Err()) })
	go func() {
		defer func() {
			rw.writeHeader(http.StatusOK)
			// A handler that returns because the request was cancelled
			// ends the body with the cancellation, not a clean EOF.
			pw.CloseWithError(req.Context().Err())
			stop()
		}()
		t.Handler.ServeHTTP(rw, req)
	}()
	select {
	case <-rw.ready:
	case <-req.Context().Done():
		return nil, req.Context().Err()
	}
	return &http.Response{
		Status:        http.StatusText(rw.status),
		StatusCode:    rw.status,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        rw.sent,
		Body:          pr,
		ContentLength: -1,
		Request:       req,
	}, nil
}

// pipeWriter is the handler's side of Transport.
type pipeWriter struct {
	header http.Header
	sent   http.Header
	status int
	body   *io.PipeWriter
	once   sync.Once
	ready  chan struct{}
}

func (w *pipeWriter) Header() http.Header { return w.header }

func (w *pipeWriter) WriteHeader(status int) { w.writeHeader(status) }

func (w *pipeWriter) writeHeader(status int) {
	w.once.Do(func() {
		w.status = status
		w.sent = w.header.Clone()
		close(w.ready)
	})
}

func (w *pipeWriter) Write(b []byte) (int, error) {
	w.writeHeader(http.StatusOK)
	return w.body.Write(b)
}

// Flush is a no-op: every write already reaches the reader through the pipe.
func (w *pipeWriter) Flush() {}
