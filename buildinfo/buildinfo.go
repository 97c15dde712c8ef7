// Package buildinfo says which oml-crm binary is running: the version given at link time
// (-ldflags "-X main.version=…") or else the module version Go recorded, the VCS revision
// and the Go version, for `oml-crm version` and the omlcrm_build_info metric.
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
)

// Info describes the running binary.
type Info struct {
	// Version is the link-time version, else the main module's version from the build
	// info: a tag, a pseudo-version derived from the VCS (go build in a git checkout), or
	// "(devel)" when Go recorded none.
	Version string
	// Revision is the VCS commit the binary was built from ("" when not recorded, e.g.
	// -buildvcs=false or a build outside a checkout); Modified is true when the work tree
	// had uncommitted changes.
	Revision string
	Modified bool
	// Time is the commit time as Go recorded it (RFC 3339), or "".
	Time      string
	GoVersion string
}

// Read returns the running binary's Info. linked is the version set with -ldflags; empty,
// the build info's module version is used.
func Read(linked string) Info {
	bi, ok := debug.ReadBuildInfo()
	return fromBuildInfo(linked, bi, ok)
}

func fromBuildInfo(linked string, bi *debug.BuildInfo, ok bool) Info {
	i := Info{Version: linked, GoVersion: runtime.Version()}
	if !ok || bi == nil {
		if i.Version == "" {
			i.Version = "(devel)"
		}
		return i
	}
	if bi.GoVersion != "" {
		i.GoVersion = bi.GoVersion
	}
	if i.Version == "" {
		i.Version = bi.Main.Version
	}
	if i.Version == "" {
		i.Version = "(devel)"
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			i.Revision = s.Value
		case "vcs.modified":
			i.Modified = s.Value == "true"
		case "vcs.time":
			i.Time = s.Value
		}
	}
	return i
}

// String is the one line `oml-crm version` prints.
func (i Info) String() string {
	rev := i.Revision
	if rev == "" {
		rev = "unknown"
	} else if i.Modified {
		rev += " (modified)"
	}
	return fmt.Sprintf("oml-crm %s, revision %s, %s %s/%s", i.Version, rev, i.GoVersion, runtime.GOOS, runtime.GOARCH)
}

// Collector returns the constant gauge omlcrm_build_info{version,revision,goversion} = 1,
// so that dashboards can show and join on what each instance runs.
func (i Info) Collector() prometheus.Collector {
	rev := i.Revision
	if i.Modified && rev != "" {
		rev += "-modified"
	}
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "omlcrm_build_info",
		Help: "Always 1; the labels say which build is running.",
		ConstLabels: prometheus.Labels{
			"version": i.Version, "revision": rev, "goversion": i.GoVersion,
		},
	})
	g.Set(1)
	return g
}
