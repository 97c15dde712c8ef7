//go:build race

package amitest_test

// raceEnabled: the race detector adds allocations of its own (4 per Send here), so
// allocation counts are not meaningful there.
const raceEnabled = true
