package buildinfo

import (
	"runtime/debug"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// What `go build` records in a git checkout with no -ldflags: the pseudo-version and the
// revision come from the build info.
func TestFromBuildInfoVCS(t *testing.T) {
	bi := &debug.BuildInfo{
		GoVersion: "go1.26.8",
		Main:      debug.Module{Path: "github.com/omlcrm/oml-crm", Version: "v0.0.0-20261203094613-5768ba4a7aff"},
		Settings: []debug.BuildSetting{
			{Key: "vcs", Value: "git"},
			{Key: "vcs.revision", Value: "5768ba4a7aff9f087da52852d02d2bbd45a18dd9"},
			{Key: "vcs.time", Value: "2026-12-03T09:46:13Z"},
			{Key: "vcs.modified", Value: "true"},
		},
	}
	i := fromBuildInfo("", bi, true)
	want := Info{Version: "v0.0.0-20261203094613-5768ba4a7aff", Revision: "5768ba4a7aff9f087da52852d02d2bbd45a18dd9",
		Modified: true, Time: "2026-12-03T09:46:13Z", GoVersion: "go1.26.8"}
	if i != want {
		t.Fatalf("fromBuildInfo = %+v, want %+v", i, want)
	}
	if s := i.String(); !strings.Contains(s, "oml-crm v0.0.0-20261203094613-5768ba4a7aff") ||
		!strings.Contains(s, "revision 5768ba4a7aff9f087da52852d02d2bbd45a18dd9 (modified)") || !strings.Contains(s, "go1.26.8") {
		t.Errorf("String() = %q", s)
	}

	// A link-time version wins; the revision still comes from the build info.
	if i := fromBuildInfo("1.2.3", bi, true); i.Version != "1.2.3" || i.Revision != want.Revision {
		t.Errorf("with -ldflags version: %+v", i)
	}
}

// No build info, or none recorded (-buildvcs=false, go run): "(devel)", no revision.
func TestFromBuildInfoNone(t *testing.T) {
	for _, c := range []struct {
		bi *debug.BuildInfo
		ok bool
	}{{nil, false}, {&debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, true}, {&debug.BuildInfo{}, true}} {
		i := fromBuildInfo("", c.bi, c.ok)
		if i.Version != "(devel)" || i.Revision != "" || i.GoVersion == "" {
			t.Errorf("fromBuildInfo(%+v, %v) = %+v", c.bi, c.ok, i)
		}
		if !strings.Contains(i.String(), "revision unknown") {
			t.Errorf("String() = %q, want it to say the revision is unknown", i.String())
		}
	}
}

func TestCollector(t *testing.T) {
	reg := prometheus.NewRegistry()
	i := Info{Version: "v1.0.0", Revision: "abc123", Modified: true, GoVersion: "go1.26.8"}
	if err := reg.Register(i.Collector()); err != nil {
		t.Fatal(err)
	}
	want := `# HELP omlcrm_build_info Always 1; the labels say which build is running.
# TYPE omlcrm_build_info gauge
omlcrm_build_info{goversion="go1.26.8",revision="abc123-modified",version="v1.0.0"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "omlcrm_build_info"); err != nil {
		t.Error(err)
	}
}
