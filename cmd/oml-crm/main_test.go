package main

import (
	"bytes"
	"context"
	"os/exec"
	"strings"
	"testing"
)

// --help of the binary and of every command (and deliveries' subcommands) prints usage on
// stdout, nothing on stderr, and exits 0.
func TestHelpOnStdout(t *testing.T) {
	cases := [][]string{{"--help"}, {"-h"}, {"help"}, {"deliveries", "list", "--help"},
		{"deliveries", "show", "--help"}, {"deliveries", "retry", "--help"}}
	for name := range commands() {
		cases = append(cases, []string{name, "--help"})
	}
	for _, args := range cases {
		var stdout, stderr bytes.Buffer
		code := dispatch(context.Background(), args, &stdout, &stderr)
		if code != 0 || !strings.Contains(stdout.String(), "usage: oml-crm") || stderr.Len() != 0 {
			t.Errorf("oml-crm %s: exit %d, stdout %q, stderr %q; want usage on stdout, exit 0", strings.Join(args, " "),
				code, firstLine(stdout.String()), stderr.String())
		}
	}
	// Without a command it is a usage error: stderr, exit 2.
	var stdout, stderr bytes.Buffer
	if code := dispatch(context.Background(), nil, &stdout, &stderr); code != 2 || stdout.Len() != 0 || stderr.Len() == 0 {
		t.Errorf("oml-crm without arguments: exit %d, stdout %q; want usage on stderr, exit 2", code, stdout.String())
	}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// `oml-crm --version` and `oml-crm version` print the same line, with the VCS revision
// of the checkout when Go stamped one (go build in a git clone, no -ldflags).
func TestVersion(t *testing.T) {
	var a, b, stderr bytes.Buffer
	if code := dispatch(context.Background(), []string{"--version"}, &a, &stderr); code != 0 {
		t.Fatalf("--version: exit %d, %s", code, stderr.String())
	}
	if code := dispatch(context.Background(), []string{"version"}, &b, &stderr); code != 0 {
		t.Fatalf("version: exit %d, %s", code, stderr.String())
	}
	if a.String() != b.String() || !strings.HasPrefix(a.String(), "oml-crm ") || !strings.Contains(a.String(), "revision") {
		t.Errorf("--version %q, version %q", a.String(), b.String())
	}
}

// A binary built from a git clone with VCS stamping and no -ldflags names the commit.
func TestVersionFromVCS(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary: skipped with -short")
	}
	git, err := exec.LookPath("git")
	if err != nil {
		t.Skip("git not installed")
	}
	top, err := exec.Command(git, "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Skipf("not in a git checkout: %v", err)
	}
	// A fresh repository holding the work tree: Go stamps VCS information only where .git
	// is a directory (not in a `git worktree`).
	dir := t.TempDir()
	files, err := exec.Command(git, "-C", strings.TrimSpace(string(top)), "ls-files", "-co", "--exclude-standard", "-z").Output()
	if err != nil {
		t.Fatal(err)
	}
	tar := exec.Command("tar", "-C", strings.TrimSpace(string(top)), "--null", "-T", "-", "-cf", "-")
	tar.Stdin = bytes.NewReader(files)
	untar := exec.Command("tar", "-C", dir, "-xf", "-")
	if untar.Stdin, err = tar.StdoutPipe(); err != nil {
		t.Fatal(err)
	}
	if err := untar.Start(); err != nil {
		t.Fatal(err)
	}
	var tarErr bytes.Buffer
	tar.Stderr = &tarErr
	if err := tar.Run(); err != nil {
		t.Fatalf("tar: %v %s", err, tarErr.String())
	}
	if err := untar.Wait(); err != nil {
		t.Fatalf("untar: %v", err)
	}
	for _, args := range [][]string{{"init", "-q"}, {"add", "-A"},
		{"-c", "user.name=test", "-c", "user.email=test@example.invalid", "commit", "-q", "-m", "test"}} {
		if out, err := exec.Command(git, append([]string{"-C", dir}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	head, err := exec.Command(git, "-C", dir, "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatal(err)
	}
	bin := dir + "/oml-crm"
	build := exec.Command(runtimeGOROOT()+"/bin/go", "build", "-buildvcs=true", "-o", bin, "./cmd/oml-crm")
	build.Dir = dir
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		t.Fatalf("--version: %v", err)
	}
	if rev := strings.TrimSpace(string(head)); !strings.Contains(string(out), "revision "+rev) || strings.Contains(string(out), "(devel)") {
		t.Errorf("--version = %q, want the module pseudo-version and revision %s", out, rev)
	}
}
