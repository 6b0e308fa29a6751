package usage

import (
	"testing"

	"portcullis/internal/testkit"
)

func startRedis(t testing.TB) string { return testkit.StartRedis(t) }
