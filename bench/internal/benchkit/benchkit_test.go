package benchkit

import (
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	s := make([]time.Duration, 100)
	for i := range s {
		s[i] = time.Duration(i+1) * time.Microsecond
	}
	if got := percentile(s, 50); got != 50*time.Microsecond {
		t.Errorf("p50 = %v, want 50µs", got)
	}
	if got := percentile(s, 99); got != 99*time.Microsecond {
		t.Errorf("p99 = %v, want 99µs", got)
	}
	one := []time.Duration{7}
	if got := percentile(one, 50); got != 7 {
		t.Errorf("p50 of one = %v, want 7", got)
	}
	if got := percentile(one, 99); got != 7 {
		t.Errorf("p99 of one = %v, want 7", got)
	}
}
