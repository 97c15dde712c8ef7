package agentws

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/omlcrm/oml-crm/catalog"
	"github.com/omlcrm/oml-crm/internal/redistest"
)

// TestLoadIdleAgents is the load figure of docs/bench/agentws.md: OMLCRM_BENCH_AGENTS idle
// agent connections (default 10000) held by a child process, the hub's memory per
// connection, then pops at OMLCRM_BENCH_RATE per second (default 200) for
// OMLCRM_BENCH_SECONDS (default 10) with the latency from Pop to the client's receipt.
// OMLCRM_BENCH_REDIS=1 runs the hub in cluster mode on Redis. It runs only when
// OMLCRM_BENCH=1 (it is a measurement, not a test).
func TestLoadIdleAgents(t *testing.T) {
	if os.Getenv("OMLCRM_BENCH") != "1" {
		t.Skip("set OMLCRM_BENCH=1 to run the agentws load measurement")
	}
	agents := envInt("OMLCRM_BENCH_AGENTS", 10000)
	rate := envInt("OMLCRM_BENCH_RATE", 200)
	seconds := envInt("OMLCRM_BENCH_SECONDS", 10)
	raiseFileLimit(t, agents+1000)

	opts := Options{MaxConns: agents + 10}
	if os.Getenv("OMLCRM_BENCH_REDIS") == "1" { // cluster mode: store and fan out through Redis
		opts.RedisURL, opts.RedisPrefix = redistest.New(t, "omlcrm-test")
	}
	th := newTestHub(t, opts)
	heap0, stack0, rss0 := memFigures()

	child := exec.Command(os.Args[0], "-test.run=^TestLoadClients$", "-test.v")
	child.Env = append(os.Environ(), "OMLCRM_BENCH_CHILD_URL="+th.wsURL(), "OMLCRM_BENCH_AGENTS="+strconv.Itoa(agents))
	stdin, _ := child.StdinPipe()
	stdout, _ := child.StdoutPipe()
	child.Stderr = os.Stderr
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer child.Process.Kill()
	lines := bufio.NewScanner(stdout)
	waitLine := func(prefix string) string {
		for lines.Scan() {
			if strings.HasPrefix(lines.Text(), prefix) {
				return lines.Text()
			}
		}
		t.Fatalf("child ended before %q", prefix)
		return ""
	}
	start := time.Now()
	waitLine("READY")
	for th.Connections() < agents {
		time.Sleep(50 * time.Millisecond)
	}
	connectTime := time.Since(start)
	heap1, stack1, rss1 := memFigures()
	t.Logf("%d idle connections (connected in %s): heap+stack %.1f KiB/conn (heap %.1f, goroutine stacks %.1f), RSS %.1f KiB/conn",
		agents, connectTime.Round(time.Millisecond),
		float64(heap1+stack1-heap0-stack0)/1024/float64(agents),
		float64(heap1-heap0)/1024/float64(agents), float64(stack1-stack0)/1024/float64(agents),
		float64(rss1-rss0)/1024/float64(agents))

	ticker := time.NewTicker(time.Second / time.Duration(rate))
	total := rate * seconds
	for i := 0; i < total; i++ {
		<-ticker.C
		agent := i*7919%agents + 1
		n := notification("bench-"+strconv.Itoa(i)+"-"+strconv.FormatInt(time.Now().UnixNano(), 10), agent, catalog.TriggerAutomatic, catalog.TargetEmbedded)
		mustPop(t, th.Hub, n)
	}
	ticker.Stop()
	time.Sleep(500 * time.Millisecond)
	stdin.Close()
	t.Logf("%d pops at %d/s: %s", total, rate, waitLine("LATENCY"))
	_ = child.Wait()
}

// TestLoadClients is the child of TestLoadIdleAgents: it holds the agent connections
// and measures pop latency from the timestamp in the call id.
func TestLoadClients(t *testing.T) {
	url := os.Getenv("OMLCRM_BENCH_CHILD_URL")
	if url == "" {
		t.Skip("child process of TestLoadIdleAgents")
	}
	agents := envInt("OMLCRM_BENCH_AGENTS", 10000)
	raiseFileLimit(t, agents+1000)
	var mu sync.Mutex
	var lat []time.Duration
	conns := make([]*websocket.Conn, agents)
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	for a := 1; a <= agents; a++ {
		wg.Add(1)
		sem <- struct{}{}
		go func(a int) {
			defer wg.Done()
			defer func() { <-sem }()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			ws, _, err := dialRaw(ctx, url, mustToken(t, a), nil, nil)
			if err != nil {
				t.Errorf("agent %d: %v", a, err)
				return
			}
			conns[a-1] = ws
		}(a)
	}
	wg.Wait()
	for _, ws := range conns {
		if ws == nil {
			continue
		}
		go func(ws *websocket.Conn) {
			for {
				_, b, err := ws.Read(context.Background())
				if err != nil {
					return
				}
				got := time.Now()
				var m struct {
					Type   string `json:"type"`
					CallID string `json:"call_id"`
				}
				if json.Unmarshal(b, &m) != nil || m.Type != TypePop {
					continue
				}
				ns, err := strconv.ParseInt(m.CallID[strings.LastIndex(m.CallID, "-")+1:], 10, 64)
				if err != nil {
					continue
				}
				mu.Lock()
				lat = append(lat, got.Sub(time.Unix(0, ns)))
				mu.Unlock()
			}
		}(ws)
	}
	fmt.Println("READY")
	_, _ = io.Copy(io.Discard, os.Stdin) // until the parent is done
	mu.Lock()
	defer mu.Unlock()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	if len(lat) == 0 {
		fmt.Println("LATENCY none received")
		return
	}
	q := func(p float64) time.Duration { return lat[int(p*float64(len(lat)-1))] }
	fmt.Printf("LATENCY received %d p50 %s p99 %s max %s\n", len(lat), q(0.50), q(0.99), lat[len(lat)-1])
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

func raiseFileLimit(t *testing.T, want int) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Cur < uint64(want) {
		lim.Cur = min(uint64(want), lim.Max)
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur < uint64(want) {
			t.Fatalf("need %d open files, the limit is %d (raise ulimit -n): %v", want, lim.Cur, err)
		}
	}
}

// memFigures returns heap in use, goroutine stacks in use and the process RSS, in bytes.
func memFigures() (heap, stack, rss uint64) {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b, _ := os.ReadFile("/proc/self/statm")
	if f := strings.Fields(string(b)); len(f) > 1 {
		pages, _ := strconv.ParseUint(f[1], 10, 64)
		rss = pages * uint64(os.Getpagesize())
	}
	return ms.HeapInuse, ms.StackInuse, rss
}
