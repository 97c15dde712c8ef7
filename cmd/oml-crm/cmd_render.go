package main

import (
	"context"
	"io"
)

func runRender(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return notYet("render", stderr)
}
