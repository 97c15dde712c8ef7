#!/usr/bin/env python3
# Header flood and idle-connection flood against a running `oml-crm run` (docs/benchmarks.md,
# "Hostile network"). Measures the daemon's RSS from /proc/PID/status.
# usage: hostile-flood.py PID PORT MODE N [TOKEN]  (MODE header: N conns x 1 MB unfinished headers from 127.0.0.3;
#        MODE idle: N idle keep-alive conns from 127.0.0.2..5 held 30 s while /healthz and /ws are probed)
import resource, selectors, socket, sys, time
pid, port, mode, N = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
tok = sys.argv[5] if len(sys.argv) > 5 else ""
resource.setrlimit(resource.RLIMIT_NOFILE, (resource.getrlimit(resource.RLIMIT_NOFILE)[1],) * 2)
def rss():
    for l in open(f"/proc/{pid}/status"):
        if l.startswith("VmRSS:"): return int(l.split()[1]) / 1024
def mk(src):
    s = socket.socket(); s.setblocking(False); s.bind((src, 0)); s.connect_ex(("127.0.0.1", port)); return s
if mode == "header":
    base = rss(); socks = [mk("127.0.0.3") for _ in range(N)]
    chunk = b"".join(b"X-Flood-%06d: %s\r\n" % (i, b"a" * 80) for i in range(700))
    sel = selectors.DefaultSelector(); sent = {}
    for s in socks: sel.register(s, selectors.EVENT_WRITE); sent[s] = 0
    first = {s: True for s in socks}; peak = base; end = time.time() + 40
    while sel.get_map() and time.time() < end:
        for k, _ in sel.select(0.2):
            s = k.fileobj
            if sent[s] >= 1_000_000: sel.unregister(s); continue
            try:
                n = s.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" if first[s] else chunk); first[s] = False; sent[s] += n
            except BlockingIOError: pass
            except OSError: sel.unregister(s)
        peak = max(peak, rss())
    for _ in range(20): peak = max(peak, rss()); time.sleep(0.1)
    print(f"header flood: {N} conns, {sum(sent.values())/1e6:.0f} MB sent in all, RSS {base:.0f} -> peak {peak:.0f} MB (+{peak-base:.0f} MB)")
else:
    def probe(req, want):
        t0 = time.time()
        try:
            c = socket.create_connection(("127.0.0.1", port), timeout=3); c.sendall(req); h = c.recv(64); c.close()
            return h.startswith(want), time.time() - t0
        except OSError: return False, time.time() - t0
    hz = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    wsr = ("GET /ws HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
           "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: omlcrm.v1, token.%s\r\n\r\n" % (port, tok)).encode()
    base = rss(); idle = []
    for i in range(N):
        try: idle.append(mk("127.0.0.%d" % (2 + i % 4)))
        except OSError as e: print("client:", e); break
    time.sleep(3)
    for s in idle:
        try: s.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        except OSError: pass
    ok = n = 0; worst = 0; peak = base; end = time.time() + 30
    while time.time() < end:
        a, d1 = probe(hz, b"HTTP/1.1 200"); b, d2 = probe(wsr, b"HTTP/1.1 101"); n += 1; ok += a and b; worst = max(worst, d1, d2)
        peak = max(peak, rss()); time.sleep(1)
    still = 0
    for s in idle:
        try:
            while s.recv(65536): pass
        except BlockingIOError: still += 1
        except OSError: pass
    print(f"idle: {len(idle)} conns opened, {still} still open after 30 s; healthz+ws {ok}/{n} ok, slowest {worst*1000:.0f} ms; RSS {base:.0f} -> peak {peak:.0f} MB")
