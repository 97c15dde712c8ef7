package main

import (
	"bufio"
	"context"
	"encoding/json"
	"net/url"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/omlcrm/oml-crm/agentws"
)

// TestDemoLeavesPopsToThePerson: a person's page for agent 1, open during the demo, gets
// agent 1's pops with nothing opened or acknowledged on its behalf by the simulated agents
// (no pop.opened, no replay marked opened), so its "Open CRM" button stays usable.
func TestDemoLeavesPopsToThePerson(t *testing.T) {
	bin := buildBinary(t)
	cmd := exec.Command(bin, "demo", "--calls", "12", "--rate", "2", "--listen", "127.0.0.1:0", "--drain", "3s")
	cmd.Dir = t.TempDir()
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pageURL := regexp.MustCompile(`agent 1: (http://\S+)/agent\?agent=1&token=(\S+)`)
	var (
		mu     sync.Mutex
		seen   []map[string]any
		dialed = make(chan error, 1)
	)
	var readers sync.WaitGroup
	lines := bufio.NewScanner(stdout)
	for lines.Scan() {
		m := pageURL.FindStringSubmatch(lines.Text())
		if m == nil {
			continue
		}
		tok, _ := url.QueryUnescape(m[2])
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(m[1], "http")+"/ws",
			&websocket.DialOptions{Subprotocols: []string{agentws.Subprotocol, "token." + tok}})
		cancel()
		dialed <- err
		if err != nil {
			break
		}
		conn.SetReadLimit(1 << 20)
		readers.Go(func() {
			defer conn.CloseNow()
			for {
				_, b, err := conn.Read(context.Background())
				if err != nil {
					return
				}
				var msg map[string]any
				if json.Unmarshal(b, &msg) == nil {
					mu.Lock()
					seen = append(seen, msg)
					mu.Unlock()
				}
			}
		})
		break
	}
	for lines.Scan() { // the rest of the run
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("demo: %v", err)
	}
	select {
	case err := <-dialed:
		if err != nil {
			t.Fatalf("agent 1's page: %v", err)
		}
	default:
		t.Fatal("the demo printed no page URL for agent 1")
	}
	readers.Wait() // the demo's exit closed the connection
	mu.Lock()
	defer mu.Unlock()
	pops := 0
	for _, m := range seen {
		switch m["type"] {
		case agentws.TypePop:
			pops++
			if m["opened"] == true {
				t.Errorf("pop %v replayed as opened: the simulated agent acted for the person", m["id"])
			}
		case agentws.TypePopOpened:
			t.Errorf("pop.opened %v: the simulated agent opened a pop of the person's agent", m["id"])
		}
	}
	if pops == 0 {
		t.Errorf("the person's page got none of agent 1's pops (acknowledged away by the simulated agent?): %v", seen)
	}
}
