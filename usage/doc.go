// Package usage owns token and cost accounting: the price table and the
// cost of a call, the windows budgets are counted in, and the reservation
// that stands between a policy's limits and an upstream call. A call
// reserves its estimated input plus its output cap before it is sent
// (Meter.Reserve), which may lower the cap to what the budget has left, and
// settles to the provider's reported usage afterwards (Reservation.Settle),
// releasing the rest. Because the check and the reservation are one atomic
// step in the Store, concurrent calls never spend more than a limit.
//
// Two stores keep the counters: the embedded one (memory, persisted to an
// append-only log on local disk; store_file.go) for one replica, and Redis
// (Lua scripts; store_redis.go) for several. See docs/budgets.md.
package usage
