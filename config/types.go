package config

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// SecretURL is a connection URL whose password never prints: String, GoString and
// MarshalText show it with the password replaced by "xxxxx" (or fully redacted when it
// does not parse as a URL). Reveal returns the real value for the code that connects.
type SecretURL string

// String returns the URL with its password masked.
func (s SecretURL) String() string {
	if s == "" {
		return ""
	}
	u, err := url.Parse(string(s))
	if err != nil || u.Scheme == "" {
		return "[redacted]"
	}
	// Query parameters may carry credentials too (password=, sslpassword=).
	q := u.Query()
	for k := range q {
		if strings.Contains(strings.ToLower(k), "pass") || strings.Contains(strings.ToLower(k), "secret") {
			q.Set(k, "xxxxx")
			u.RawQuery = q.Encode()
		}
	}
	return u.Redacted()
}

// GoString masks the password in %#v.
func (s SecretURL) GoString() string { return strconv.Quote(s.String()) }

// MarshalText masks the password for encoders (JSON, YAML, zerolog).
func (s SecretURL) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Reveal returns the URL with its password; call it only where the connection is made.
func (s SecretURL) Reveal() string { return string(s) }

// ByteSize is a size in bytes, written in the file as a number or with a binary or
// decimal suffix: 65536, 64KiB, 1MiB, 64KB, 1MB.
type ByteSize int64

// ParseByteSize parses a size such as "64KiB".
func ParseByteSize(s string) (ByteSize, error) {
	t := strings.TrimSpace(s)
	units := []struct {
		suffix string
		mult   int64
	}{
		{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
		{"KB", 1000}, {"MB", 1000_000}, {"GB", 1000_000_000},
		{"B", 1},
	}
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(t, u.suffix) {
			mult = u.mult
			t = strings.TrimSpace(strings.TrimSuffix(t, u.suffix))
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("invalid size %q (want a byte count or e.g. 64KiB, 1MiB)", s)
	}
	if n > (1<<62)/mult {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return ByteSize(n * mult), nil
}

// String formats the size with the largest exact binary unit.
func (b ByteSize) String() string {
	switch {
	case b != 0 && b%(1<<30) == 0:
		return fmt.Sprintf("%dGiB", b>>30)
	case b != 0 && b%(1<<20) == 0:
		return fmt.Sprintf("%dMiB", b>>20)
	case b != 0 && b%(1<<10) == 0:
		return fmt.Sprintf("%dKiB", b>>10)
	}
	return strconv.FormatInt(int64(b), 10)
}

// MarshalText writes the size as String does, so a printed config reads like the file.
func (b ByteSize) MarshalText() ([]byte, error) { return []byte(b.String()), nil }

// UnmarshalText parses a size such as "64KiB".
func (b *ByteSize) UnmarshalText(p []byte) error {
	v, err := ParseByteSize(string(p))
	if err != nil {
		return err
	}
	*b = v
	return nil
}
