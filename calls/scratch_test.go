package calls

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestScratchDump(t *testing.T) {
	dir := sharedFile(t, "")
	for _, sub := range []string{"ami", "ari"} {
		ents, _ := os.ReadDir(filepath.Join(dir, sub))
		for _, e := range ents {
			n := e.Name()
			rec := &recorder{}
			tr, err := NewTracker(Options{Output: rec})
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case strings.HasSuffix(n, ".ami"):
				for _, m := range readAMI(t, filepath.Join(dir, sub, n)) {
					tr.HandleAMI(m)
				}
			case strings.HasSuffix(n, ".jsonl"):
				for _, ev := range readARI(t, filepath.Join(dir, sub, n)) {
					tr.HandleARI(ev)
				}
			default:
				continue
			}
			c, e, _ := rec.snapshot()
			fmt.Printf("== %s: %d connected, %d ended, stats %+v\n", n, len(c), len(e), tr.Stats())
			for i, x := range c {
				if i < 3 {
					fmt.Printf("   %+v\n", x)
				}
			}
			for i, x := range e {
				if i < 3 {
					fmt.Printf("   %+v\n", x)
				}
			}
		}
	}
}
