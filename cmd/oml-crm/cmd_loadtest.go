package main

import (
	"context"
	"io"
)

func runLoadtest(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return notYet("loadtest", stderr)
}
