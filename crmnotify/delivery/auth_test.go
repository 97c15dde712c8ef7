package delivery

import (
	"errors"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
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

func TestRowErrorIsNotHeld(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{&pgconn.PgError{Code: "22021"}, true}, // invalid byte sequence for encoding UTF8
		{&pgconn.PgError{Code: "23505"}, true},
		{&pgconn.PgError{Code: "53100"}, false}, // disk full
		{&pgconn.PgError{Code: "25006"}, false}, // read-only transaction
		{errors.New("database or disk is full (13)"), false},
	} {
		if got := rowError(fmt.Errorf("insert: %w", tc.err)); got != tc.want {
			t.Errorf("rowError(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
