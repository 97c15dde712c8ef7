package delivery

import (
	"math"
	"testing"
	"time"
)

func TestLoginLifetime(t *testing.T) {
	for _, tc := range []struct {
		configured int
		answered   any
		want       time.Duration
	}{
		{3600, nil, time.Hour},
		{math.MaxInt, nil, maxLoginLifetime},
		{0, nil, loginFallbackLifetime},
		{0, "120", 2 * time.Minute},
		{0, "1e300", maxLoginLifetime},
		{0, "NaN", loginFallbackLifetime},
		{0, "Inf", maxLoginLifetime},
		{0, "-5", loginFallbackLifetime},
	} {
		if got := loginLifetime(tc.configured, tc.answered); got != tc.want {
			t.Errorf("loginLifetime(%d, %v) = %s, want %s", tc.configured, tc.answered, got, tc.want)
		}
	}
}
