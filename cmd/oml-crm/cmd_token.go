package main

import (
	"context"
	"io"
)

func runToken(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return notYet("token", stderr)
}
