//go:build !race

package amitest_test

const raceEnabled = false
