package loadtest

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/omlcrm/oml-crm/config"
	"github.com/omlcrm/oml-crm/httpserver"
)

// TestDaemonConfigAdmitsEveryAgent: the daemon under test accepts every agent of the
// run although all of them connect from one address (the per-client cap defaults to
// half the total, which refused half of a 10,000-agent run).
func TestDaemonConfigAdmitsEveryAgent(t *testing.T) {
	const agents = 10000
	dir := t.TempDir()
	path := filepath.Join(dir, "oml-crm.yaml")
	c := daemonConfig{
		LogLevel: "warn", Listen: "127.0.0.1:0", Source: "ami", Catalog: filepath.Join(dir, "catalog.yaml"),
		SQLite: filepath.Join(dir, "deliveries.db"), TokenSecret: "0123456789abcdef0123456789abcdef",
		AMIAddress: "127.0.0.1:5038", AMISecret: "secret", Agents: agents,
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.write(f); err != nil {
		t.Fatal(err)
	}
	f.Close()
	cfg, err := config.Load(path, nil)
	if err != nil {
		t.Fatalf("the generated config does not load: %v", err)
	}
	// The descriptor limit the run needs: one per agent and the reserve.
	total, _ := httpserver.MaxConns(cfg.HTTP.MaxConnections, 4*agents)
	if per := httpserver.MaxConnsPerClient(cfg.HTTP.MaxConnectionsPerClient, total); per < agents+1 {
		t.Fatalf("the daemon admits %d connections from 127.0.0.1 (total %d), want the %d agents and a probe", per, total, agents)
	}
}
