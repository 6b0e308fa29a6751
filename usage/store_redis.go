package usage

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisStore keeps the counters in Redis, so that every replica sharing
// the Redis counts against the same limits. Each counter is one hash
// ("pc:" + its key) with three fields per bucket (<bucket>:r, :t, :p for
// requests, tokens, picodollars), expiring with its window; a reservation
// is one Lua script that reads every counter of the call, decides with
// the same rule as the embedded store, and adds to all of them, so
// reservations from any number of replicas are serialised by Redis.
//
// Lua computes in doubles: sums stay exact up to 2^53 picodollars
// (about $9,007); a dollar budget larger than that is compared to within
// a few picodollars. Increments are passed as exact integers.
type RedisStore struct {
	client redis.UniversalClient
}

var _ Store = (*RedisStore)(nil)

// OpenRedisStore connects to the Redis at url (redis:// or rediss://).
// It does not wait for Redis to answer: a Redis that is down shows as a
// store error on the calls, which their budgets' on_store_error decides.
func OpenRedisStore(url string) (*RedisStore, error) {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("usage store: %w", err)
	}
	// Fail fast: a call waits for its reservation.
	if opt.DialTimeout == 0 {
		opt.DialTimeout = time.Second
	}
	if opt.ReadTimeout == 0 {
		opt.ReadTimeout = time.Second
	}
	if opt.WriteTimeout == 0 {
		opt.WriteTimeout = time.Second
	}
	opt.MaxRetries = 1
	return &RedisStore{client: redis.NewClient(opt)}, nil
}

// Ping checks that Redis answers.
func (s *RedisStore) Ping(ctx context.Context) error {
	if err := s.client.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("%w: %w", ErrStoreUnavailable, err)
	}
	return nil
}

// reserveScript transcribes fit (store.go). KEYS are the counters' hashes;
// ARGV: input, in_pico, out_pico, max_output, min_output, then per counter
// bucket, span, ttl_ms, limit_requests, limit_tokens, limit_pico. It
// answers {1, output, used...} or {0, refused index (1-based), unit,
// used...}, used being requests, tokens, pico per counter.
var reserveScript = redis.NewScript(`
local input, inp, outp = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local output, minout = tonumber(ARGV[4]), tonumber(ARGV[5])
local n = #KEYS
local used, cur = {}, {}
for i = 1, n do
  local a = 5 + (i - 1) * 6
  local bucket, span = tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
  cur[i] = ARGV[a + 1]
  local r, t, p = 0, 0, 0
  local h = redis.call('HGETALL', KEYS[i])
  for j = 1, #h, 2 do
    local f = h[j]
    local sep = string.find(f, ':', 1, true)
    local b = tonumber(string.sub(f, 1, sep - 1))
    if b <= bucket - span then
      redis.call('HDEL', KEYS[i], f)
    elseif b <= bucket then
      local kind, v = string.sub(f, sep + 1), tonumber(h[j + 1])
      if kind == 'r' then r = r + v elseif kind == 't' then t = t + v else p = p + v end
    end
  end
  used[i] = {r, t, p}
end
local bind, unit = -1, ''
for i = 1, n do
  local a = 5 + (i - 1) * 6
  local lr, lt, lp = tonumber(ARGV[a + 4]), tonumber(ARGV[a + 5]), tonumber(ARGV[a + 6])
  local u = used[i]
  if lr > 0 and u[1] + 1 > lr then
    local out = {0, i, 'requests'}
    for k = 1, n do for m = 1, 3 do out[#out + 1] = used[k][m] end end
    return out
  end
  if lt > 0 then
    local room = lt - u[2] - input
    if room < output then output, bind, unit = room, i, 'tokens' end
  end
  if lp > 0 and (inp > 0 or outp > 0) then
    local room = lp - u[3] - input * inp
    local o = output
    if room < 0 then o = -1 elseif outp > 0 then o = math.floor(room / outp) end
    if o < output then output, bind, unit = o, i, 'usd' end
  end
end
if bind >= 0 and output < minout then
  local out = {0, bind, unit}
  for k = 1, n do for m = 1, 3 do out[#out + 1] = used[k][m] end end
  return out
end
local tokens = input + output
local pico = input * inp + output * outp
local out = {1, output, ''}
for i = 1, n do
  local a = 5 + (i - 1) * 6
  redis.call('HINCRBY', KEYS[i], cur[i] .. ':r', 1)
  redis.call('HINCRBY', KEYS[i], cur[i] .. ':t', string.format('%d', tokens))
  if pico ~= 0 then redis.call('HINCRBY', KEYS[i], cur[i] .. ':p', string.format('%d', pico)) end
  local ttl = tonumber(ARGV[a + 3])
  if redis.call('PTTL', KEYS[i]) < ttl then redis.call('PEXPIRE', KEYS[i], ttl) end
  out[#out + 1] = used[i][1] + 1
  out[#out + 1] = used[i][2] + tokens
  out[#out + 1] = used[i][3] + pico
end
return out
`)

// settleScript adds ARGV[1..3] (requests, tokens, pico) to the bucket
// ARGV[3+i] of each KEYS[i], keeping it for ARGV[3+n+i] ms at least.
var settleScript = redis.NewScript(`
local n = #KEYS
for i = 1, n do
  local b = ARGV[3 + i]
  if ARGV[1] ~= '0' then redis.call('HINCRBY', KEYS[i], b .. ':r', ARGV[1]) end
  if ARGV[2] ~= '0' then redis.call('HINCRBY', KEYS[i], b .. ':t', ARGV[2]) end
  if ARGV[3] ~= '0' then redis.call('HINCRBY', KEYS[i], b .. ':p', ARGV[3]) end
  local ttl = tonumber(ARGV[3 + n + i])
  if redis.call('PTTL', KEYS[i]) < ttl then redis.call('PEXPIRE', KEYS[i], ttl) end
end
return 1
`)

func redisKey(k string) string { return "pc:" + k }

// Reserve implements Store.
func (s *RedisStore) Reserve(ctx context.Context, a *Ask) (Grant, error) {
	keys := make([]string, len(a.Counters))
	args := make([]any, 0, 5+6*len(a.Counters))
	args = append(args, a.Input, a.InPico, a.OutPico, a.MaxOutput, a.MinOutput)
	for i, c := range a.Counters {
		keys[i] = redisKey(c.Key)
		args = append(args, c.Bucket, c.Span, c.TTL.Milliseconds(), c.Limit.Requests, c.Limit.Tokens, c.Limit.Pico)
	}
	res, err := reserveScript.Run(ctx, s.client, keys, args...).Slice()
	if err != nil {
		return Grant{}, fmt.Errorf("%w: %w", ErrStoreUnavailable, err)
	}
	if len(res) != 3+3*len(a.Counters) {
		return Grant{}, fmt.Errorf("%w: reserve script answered %d values", ErrStoreUnavailable, len(res))
	}
	g := Grant{Refused: -1, Used: make([]Amount, len(a.Counters))}
	for i := range g.Used {
		g.Used[i] = Amount{asInt(res[3+3*i]), asInt(res[4+3*i]), asInt(res[5+3*i])}
	}
	if asInt(res[0]) == 1 {
		g.Output = asInt(res[1])
		return g, nil
	}
	g.Refused = int(asInt(res[1])) - 1
	g.Unit = Unit(fmt.Sprint(res[2]))
	return g, nil
}

func asInt(v any) int64 {
	switch v := v.(type) {
	case int64:
		return v
	case string:
		n, _ := strconv.ParseInt(v, 10, 64)
		return n
	}
	return 0
}

// Settle implements Store.
func (s *RedisStore) Settle(ctx context.Context, counters []Counter, delta Amount) error {
	keys := make([]string, len(counters))
	args := make([]any, 0, 3+2*len(counters))
	args = append(args, strconv.FormatInt(delta.Requests, 10), strconv.FormatInt(delta.Tokens, 10), strconv.FormatInt(delta.Pico, 10))
	for i, c := range counters {
		keys[i] = redisKey(c.Key)
		args = append(args, c.Bucket)
	}
	for _, c := range counters {
		args = append(args, c.TTL.Milliseconds())
	}
	if err := settleScript.Run(ctx, s.client, keys, args...).Err(); err != nil {
		return fmt.Errorf("%w: %w", ErrStoreUnavailable, err)
	}
	return nil
}

// Read implements Store.
func (s *RedisStore) Read(ctx context.Context, counters []Counter) ([]Amount, error) {
	pipe := s.client.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(counters))
	for i, c := range counters {
		cmds[i] = pipe.HGetAll(ctx, redisKey(c.Key))
	}
	if _, err := pipe.Exec(ctx); err != nil && err != redis.Nil {
		return nil, fmt.Errorf("%w: %w", ErrStoreUnavailable, err)
	}
	out := make([]Amount, len(counters))
	for i, c := range counters {
		for f, v := range cmds[i].Val() {
			b, kind, ok := strings.Cut(f, ":")
			bucket, err := strconv.ParseInt(b, 10, 64)
			if !ok || err != nil || bucket <= c.Bucket-c.Span || bucket > c.Bucket {
				continue
			}
			n, _ := strconv.ParseInt(v, 10, 64)
			switch kind {
			case "r":
				out[i].Requests += n
			case "t":
				out[i].Tokens += n
			case "p":
				out[i].Pico += n
			}
		}
	}
	return out, nil
}

// Close implements Store.
func (s *RedisStore) Close() error { return s.client.Close() }
