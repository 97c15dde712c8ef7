//go:build !race

package ari_test

const raceEnabled = false
