package usage

import (
	"context"
	"errors"
	"time"
)

// Store keeps the counters. Reserve must check every counter of an ask and
// add to all of them as one atomic step, which is what keeps concurrent
// calls (on one replica or many) within the limits.
type Store interface {
	// Reserve adds the ask to its counters if it fits, lowering the output
	// to what fits; else it adds nothing and names the counter that refused.
	Reserve(ctx context.Context, a *Ask) (Grant, error)
	// Settle adds delta (usually negative: the unused rest of a
	// reservation) to the counters a reservation was made on.
	Settle(ctx context.Context, counters []Counter, delta Amount) error
	// Read returns the counters' current sums, for reports.
	Read(ctx context.Context, counters []Counter) ([]Amount, error)
	// Close flushes and releases the store.
	Close() error
}

// ErrStoreUnavailable wraps a store failure (Redis unreachable, say).
var ErrStoreUnavailable = errors.New("usage store unavailable")

// Amount is what a counter holds: calls, tokens and picodollars.
type Amount struct {
	Requests int64
	Tokens   int64
	Pico     int64
}

func (a Amount) sub(b Amount) Amount {
	return Amount{a.Requests - b.Requests, a.Tokens - b.Tokens, a.Pico - b.Pico}
}

// Counter is one limit as a store sees it: its key (the limit's key with
// the window's period), the current bucket and how many buckets to sum,
// how long to keep what is written now, and the limit itself (a zero field
// is no limit in that unit).
type Counter struct {
	Key    string
	Bucket int64
	Span   int64
	TTL    time.Duration
	Limit  Amount
}

// Ask is one reservation as a store sees it: one request, Input tokens
// plus up to MaxOutput output tokens, priced at InPico and OutPico per
// token. It fits if at least MinOutput output tokens fit.
type Ask struct {
	Counters        []Counter
	Input           int64
	InPico, OutPico int64
	MaxOutput       int64
	MinOutput       int64
}

// amount is what the ask reserves with output tokens of output.
func (a *Ask) amount(output int64) Amount {
	return Amount{Requests: 1, Tokens: a.Input + output, Pico: a.Input*a.InPico + output*a.OutPico}
}

// Grant is a store's answer to an ask.
type Grant struct {
	// Output is the output tokens reserved; 0 when refused.
	Output int64
	// Refused is the index of the counter that refused, -1 when granted,
	// and Unit which of its limits.
	Refused int
	Unit    Unit
	// Used is every counter's sum after the reservation (before it, when refused).
	Used []Amount
}

// Unit is a limit's unit.
type Unit string

// The units of limits.
const (
	UnitRequests Unit = "requests"
	UnitTokens   Unit = "tokens"
	UnitUSD      Unit = "usd"
)

// fit decides an ask against the counters' current sums: how much output
// fits under every limit, or which limit refuses. Every store decides with
// it (the Redis store's script is its transcription).
func fit(a *Ask, used []Amount) (output int64, refused int, unit Unit) {
	output, refused = a.MaxOutput, -1
	bind, bindUnit := -1, Unit("")
	for i, c := range a.Counters {
		u := used[i]
		if c.Limit.Requests > 0 && u.Requests+1 > c.Limit.Requests {
			return 0, i, UnitRequests
		}
		if c.Limit.Tokens > 0 {
			if room := c.Limit.Tokens - u.Tokens - a.Input; room < output {
				output, bind, bindUnit = room, i, UnitTokens
			}
		}
		if c.Limit.Pico > 0 && (a.InPico > 0 || a.OutPico > 0) {
			room := c.Limit.Pico - u.Pico - a.Input*a.InPico
			o := output
			switch {
			case room < 0:
				o = -1
			case a.OutPico > 0:
				o = room / a.OutPico
			}
			if o < output {
				output, bind, bindUnit = o, i, UnitUSD
			}
		}
	}
	if bind >= 0 && output < a.MinOutput {
		return 0, bind, bindUnit
	}
	return output, -1, ""
}
