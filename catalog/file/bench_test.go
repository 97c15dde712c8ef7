package file

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/omlcrm/oml-crm/internal/pgtest"
)

func BenchmarkParseDocsExamples(b *testing.B) {
	data, err := os.ReadFile(filepath.Join(pgtest.ModuleRoot(b), "testdata", "catalog", "docs-examples.yaml"))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse("docs-examples.yaml", data); err != nil {
			b.Fatal(err)
		}
	}
}
