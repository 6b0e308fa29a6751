package audit

import (
	"io"
	"os"
)

// writerTarget writes sealed lines to a stream such as standard output.
// The stream's chain starts at Genesis each time the gateway starts.
type writerTarget struct {
	w     io.Writer
	label string
	chain chain
	buf   []byte
}

// newStdout writes to the process's standard output as it is when the
// sink opens.
func newStdout() *writerTarget {
	return &writerTarget{w: os.Stdout, label: "stdout", chain: chain{prev: Genesis}}
}

func (t *writerTarget) name() string { return t.label }

func (t *writerTarget) write(bodies [][]byte) (int, error) {
	t.buf = t.buf[:0]
	before := t.chain.prev
	for _, b := range bodies {
		t.buf = t.chain.seal(t.buf, b)
		t.buf = append(t.buf, '\n')
	}
	_, err := t.w.Write(t.buf)
	if err != nil {
		// What reached the stream is unknown; count nothing as written
		// and seal the batch again on the retry.
		t.chain.prev = before
		return 0, err
	}
	return len(bodies), nil
}

func (t *writerTarget) idle()        {}
func (t *writerTarget) close() error { return nil }
