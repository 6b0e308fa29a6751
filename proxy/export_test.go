package proxy

import "time"

// AdvanceClock moves the time the gateway's cooldowns go by.
func AdvanceClock(s *Server, d time.Duration) { s.clock.offset.Add(int64(d)) }
