package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/omlcrm/oml-crm/internal/pgtest"
)

// opsRecipes are the `# recipe: NAME` shell blocks of docs/operations.md, by name.
func opsRecipes(t *testing.T) map[string]string {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join(pgtest.ModuleRoot(t), "docs", "operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, m := range regexp.MustCompile("(?s)```sh\n# recipe: ([a-z]+)\n(.*?)\n```").FindAllSubmatch(doc, -1) {
		out[string(m[1])] = string(m[2])
	}
	return out
}

// runRecipe runs a recipe in a folder holding log as oml-crm.log, with env added.
func runRecipe(t *testing.T, jqPath, recipe, log string, env ...string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "oml-crm.log"), []byte(log), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", "-c", recipe)
	cmd.Dir = dir
	// The jq found on PATH (or the one the test was told about) is the one the recipe runs.
	cmd.Env = append(os.Environ(), append(env, "PATH="+filepath.Dir(jqPath)+string(os.PathListSeparator)+os.Getenv("PATH"))...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("recipe %q: %v\n%s", recipe, err, stderr.String())
	}
	return stdout.String()
}

// opsCalls are the calls of an end-to-end run the recipes are checked against.
type opsCalls struct {
	all          []string // every call that connected, once each
	server       string   // a call delivered by the server
	notification string   // its notification id
	pop          string   // a call popped in the browser
	skipReasons  []string // the reasons of the skipped calls
}

// checkOperationsRecipes runs docs/operations.md's jq recipes on a daemon's JSON log
// and checks that they follow the calls as the document says.
func checkOperationsRecipes(t *testing.T, log string, calls opsCalls) {
	t.Helper()
	jqPath, err := exec.LookPath("jq")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("jq is needed to check docs/operations.md's recipes (apt-get install jq): %v", err)
		}
		t.Skipf("jq not installed: docs/operations.md's recipes not checked (apt-get install jq)")
	}
	// Every line is JSON with an RFC 3339 timestamp in milliseconds.
	stamp := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(Z|[+-]\d\d:\d\d)$`)
	for _, l := range strings.Split(strings.TrimSpace(log), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line is not JSON: %q", l)
		}
		if ts, _ := m["time"].(string); !stamp.MatchString(ts) {
			t.Errorf("time %q is not RFC 3339 with milliseconds: %s", ts, l)
		}
	}

	recipes := opsRecipes(t)
	for _, name := range []string{"call", "connects", "notification", "skipped", "undelivered", "slow", "problems"} {
		if recipes[name] == "" {
			t.Fatalf("docs/operations.md has no %q recipe (have %v)", name, recipes)
		}
	}
	outcomes := func(out string) []string {
		var got []string
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			var m map[string]any
			if err := json.Unmarshal([]byte(l), &m); err != nil {
				t.Fatalf("recipe output is not JSON lines: %q", l)
			}
			if o, ok := m["outcome"].(string); ok {
				got = append(got, o)
			}
		}
		return got
	}

	// One server call: its connect line, then its delivery.
	got := outcomes(runRecipe(t, jqPath, recipes["call"], log, "CALL="+calls.server))
	if len(got) < 2 || got[0] != "server" || got[len(got)-1] != "delivered" {
		t.Errorf("call recipe on server call %s: outcomes %v, want server … delivered", calls.server, got)
	}
	got = outcomes(runRecipe(t, jqPath, recipes["notification"], log, "NOTIFICATION="+calls.notification))
	if len(got) < 2 || got[0] != "server" || got[len(got)-1] != "delivered" {
		t.Errorf("notification recipe on %s: outcomes %v, want server … delivered", calls.notification, got)
	}
	// A popped call: exactly one line with an outcome.
	if got := outcomes(runRecipe(t, jqPath, recipes["call"], log, "CALL="+calls.pop)); len(got) != 1 || got[0] != "popped" {
		t.Errorf("call recipe on popped call %s: outcomes %v, want [popped]", calls.pop, got)
	}

	// Exactly one line per connect.
	seen := map[string]int{}
	// TSV rows: only the newline is trimmed, so that empty last columns stay.
	for _, row := range strings.Split(strings.TrimRight(runRecipe(t, jqPath, recipes["connects"], log), "\n"), "\n") {
		if cols := strings.Split(row, "\t"); len(cols) == 6 {
			seen[cols[1]]++
		} else {
			t.Errorf("connects recipe row %q: want 6 columns", row)
		}
	}
	for _, id := range calls.all {
		if seen[id] != 1 {
			t.Errorf("connects recipe: call %s on %d lines, want 1 (all: %v)", id, seen[id], seen)
		}
	}
	if len(seen) != len(calls.all) {
		t.Errorf("connects recipe: %d calls, want %d: %v", len(seen), len(calls.all), seen)
	}

	skipped := runRecipe(t, jqPath, recipes["skipped"], log)
	for _, r := range calls.skipReasons {
		if !regexp.MustCompile(`(?m)^\s*\d+ ` + r + `$`).MatchString(skipped) {
			t.Errorf("skipped recipe lacks %s:\n%s", r, skipped)
		}
	}
	// The others run, and list only what they say.
	for _, row := range strings.Split(strings.TrimRight(runRecipe(t, jqPath, recipes["undelivered"], log), "\n"), "\n") {
		if row != "" && !strings.Contains(row, "\tretrying\t") && !strings.Contains(row, "\tdead\t") {
			t.Errorf("undelivered recipe row %q", row)
		}
	}
	runRecipe(t, jqPath, recipes["slow"], log)
	for _, row := range strings.Split(strings.TrimRight(runRecipe(t, jqPath, recipes["problems"], log), "\n"), "\n") {
		if cols := strings.Split(row, "\t"); row != "" && (len(cols) != 6 || cols[1] != "warn" && cols[1] != "error") {
			t.Errorf("problems recipe row %q", row)
		}
	}
}
