package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/pflag"

	"github.com/omlcrm/oml-crm/buildinfo"
)

func runVersion(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := pflag.NewFlagSet("version", pflag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stdout, "usage: oml-crm version   (also: oml-crm --version)")
		fmt.Fprintln(stdout, "\nPrints the version (-ldflags \"-X main.version=…\", else the module version Go recorded),")
		fmt.Fprintln(stdout, "the VCS revision and the Go version the binary was built with.")
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return 0
		}
		fmt.Fprintf(stderr, "oml-crm version: %v\n", err)
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "oml-crm version: unexpected arguments %q\n", fs.Args())
		return 2
	}
	fmt.Fprintln(stdout, buildinfo.Read(version))
	return 0
}
