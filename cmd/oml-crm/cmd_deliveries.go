package main

import (
	"context"
	"io"
)

func runDeliveries(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return notYet("deliveries", stderr)
}
