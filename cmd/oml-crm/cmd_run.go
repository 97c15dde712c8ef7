package main

import (
	"context"
	"io"
)

func runRun(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return notYet("run", stderr)
}
