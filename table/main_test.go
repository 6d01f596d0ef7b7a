package table_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when a test leaves a goroutine behind (a
// Group's watcher that was not closed).
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
