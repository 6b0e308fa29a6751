package adapters

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

var eventHeaders = []string{":message-type", ":event-type", ":content-type"}

func eventFrame(event, payload string) []byte {
	return AppendFrame(nil, eventHeaders, map[string]string{":message-type": "event", ":event-type": event, ":content-type": "application/json"}, []byte(payload))
}

func TestFrameReader(t *testing.T) {
	stream := append(eventFrame("messageStart", `{"role":"assistant","p":"abc"}`), eventFrame("contentBlockDelta", `{"contentBlockIndex":0,"delta":{"text":"Red"}}`)...)
	for _, r := range []io.Reader{bytes.NewReader(stream), iotest.OneByteReader(bytes.NewReader(stream))} {
		fr := NewFrameReader(r)
		f, err := fr.Next()
		if err != nil || f.Headers[":event-type"] != "messageStart" || f.Headers[":message-type"] != "event" || string(f.Payload) != `{"role":"assistant","p":"abc"}` {
			t.Fatalf("frame %+v %q (%v)", f.Headers, f.Payload, err)
		}
		f, err = fr.Next()
		if err != nil || f.Headers[":event-type"] != "contentBlockDelta" {
			t.Fatalf("frame %+v (%v)", f.Headers, err)
		}
		if _, err := fr.Next(); !errors.Is(err, io.EOF) {
			t.Errorf("end %v, want io.EOF", err)
		}
	}
}

// A header of every type is read; only strings are kept.
func TestFrameHeaderTypes(t *testing.T) {
	hb := []byte{}
	add := func(name string, typ byte, value ...byte) {
		hb = append(append(append(hb, byte(len(name))), name...), typ)
		hb = append(hb, value...)
	}
	add("t", 0)
	add("f", 1)
	add("b", 2, 1)
	add("s", 3, 0, 1)
	add("i", 4, 0, 0, 0, 1)
	add("l", 5, 0, 0, 0, 0, 0, 0, 0, 1)
	add("y", 6, 0, 2, 'h', 'i')
	add("str", 7, 0, 2, 'o', 'k')
	add("ts", 8, 0, 0, 0, 0, 0, 0, 0, 1)
	add("u", 9, make([]byte, 16)...)
	h, err := parseHeaders(hb)
	if err != nil || len(h) != 1 || h["str"] != "ok" {
		t.Errorf("headers %v (%v)", h, err)
	}
}

func TestFrameReaderRefusesBrokenFrames(t *testing.T) {
	good := eventFrame("messageStop", `{"stopReason":"end_turn"}`)
	flip := func(i int) []byte {
		b := append([]byte(nil), good...)
		b[i] ^= 0xff
		return b
	}
	for name, tc := range map[string]struct {
		in   []byte
		want error
	}{
		"prelude checksum":   {flip(9), ErrBadFrame},
		"message checksum":   {flip(len(good) - 1), ErrBadFrame},
		"payload changed":    {flip(len(good) - 6), ErrBadFrame},
		"cut inside a frame": {good[:len(good)-3], io.ErrUnexpectedEOF},
		"cut in the prelude": {good[:5], io.ErrUnexpectedEOF},
	} {
		if _, err := NewFrameReader(bytes.NewReader(tc.in)).Next(); !errors.Is(err, tc.want) {
			t.Errorf("%s: error %v, want %v", name, err, tc.want)
		}
	}
}

// Any bytes end within as many frames as could fit, without a panic;
// frames written by AppendFrame read back.
func FuzzFrameReader(f *testing.F) {
	f.Add(eventFrame("messageStart", `{"role":"assistant"}`), "x", []byte("{}"))
	f.Add(append(eventFrame("a", "1"), 0, 0), "", []byte(nil))
	f.Fuzz(func(t *testing.T, in []byte, event string, payload []byte) {
		fr := NewFrameReader(bytes.NewReader(in))
		ended := false
		for range len(in)/frameMin + 1 {
			if _, err := fr.Next(); err != nil {
				ended = true
				break
			}
		}
		if !ended {
			t.Fatalf("more frames than %d bytes can hold", len(in))
		}
		if len(event) > 255 || len(payload) > 1<<16 {
			return
		}
		frame := AppendFrame(nil, []string{":event-type"}, map[string]string{":event-type": event}, payload)
		got, err := NewFrameReader(bytes.NewReader(frame)).Next()
		if err != nil || got.Headers[":event-type"] != event || !bytes.Equal(got.Payload, payload) {
			t.Fatalf("round trip: %+v %q (%v)", got.Headers, got.Payload, err)
		}
	})
}
