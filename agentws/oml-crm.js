/*
 * oml-crm.js: the oml-crm browser client. No dependencies.
 *
 * Injected (OMniLeads' agent console, through deploy/nginx/oml-crm.conf):
 *
 *   <script src="/oml-crm/oml-crm.js" data-oml-crm="auto" defer></script>
 *
 * connects by itself to the websocket beside the script (/oml-crm/oml-crm.js → /oml-crm/ws,
 * with the page's session cookie) and shows pops in a docked, resizable, collapsible panel
 * of its own, inside a shadow root: the page's CSS cannot reach it and its CSS cannot reach
 * the page. Optional attributes: data-clear-after="30" (seconds a card stays after the call
 * ended, default 30), data-max-cards="6"; window.OmlCrmConfig = {clearAfter: ms, maxCards: n}
 * set before the script does the same.
 *
 * Explicit (the /agent demo page, or a page of your own):
 *
 *   var client = OmlCrm.connect({
 *     url: "wss://host/ws",          // default: "ws" beside this script
 *     container: "#crm",             // element or selector where cards go (page's own CSS)
 *     token: "v1.…",                 // agent token (omit with the OMniLeads session cookie)
 *     clearAfter: 30000,             // ms a card stays after call.ended (0: until dismissed)
 *     maxCards: 6,                   // cards kept; the oldest unpinned one goes first
 *     onPop: function (pop, api) {}, // return false to render it yourself (then call api.opened(),
 *                                    // and api.ack() once the page is done with it)
 *     onState: function (state, detail) {} // "connecting" | "open" | "closed"
 *   });
 *   client.close();
 *
 * Rendering of a pop (server message crm.pop): target "embedded" → an <iframe> (POST: a
 * generated <form> submitted into it) plus an "Open in a tab" link; frame_refused → an
 * "Open CRM in a tab" button instead of the iframe; target "new_tab" → the named CRM window
 * (window "omlcrm-crm"), opened by the agent's first click ("Allow CRM tabs" or a card's
 * button) and navigated by later pops; trigger "agent" → an "Open CRM" button; a JSON POST
 * is sent with fetch. A pop with a known id and a higher rev replaces the card while it is
 * unopened; "replaces" swaps an earlier (ringing) card; pop.withdrawn removes the card.
 *
 * Several tabs of one agent: one tab leads (a lock in localStorage, renewed while the tab
 * lives, taken by the tab the agent focuses); only the leader opens automatic pops, the
 * others show them as handled. Values are always set as DOM properties, never as HTML.
 */
(function (global) {
  "use strict";

  var SUBPROTOCOL = "omlcrm.v1";
  var PING_EVERY = 25000; // application ping: detects dead connections the browser would not
  var PONG_WAIT = 10000;
  var BACKOFF_MIN = 500;
  var BACKOFF_MAX = 30000;
  var CLAIM_TTL = 120000; // how long a tab's claim to open a pop holds
  var LEAD_TTL = 6000; // a leader that stops renewing (closed, frozen) is replaced after this
  var RECHECK = 1000; // how often a tab that left a pop to the leader looks whether it was opened
  var CLEAR_AFTER = 30000;
  var MAX_CARDS = 6;
  var CRM_WINDOW = "omlcrm-crm"; // the named window new-tab pops reuse
  var KEY_PREFIX = "omlcrm.";

  var doc = global.document;
  var thisScript = doc && doc.currentScript;

  // The websocket is served beside this script: /oml-crm.js → /ws, and behind a proxy
  // prefix /oml-crm/oml-crm.js → /oml-crm/ws (OMniLeads' own /ws belongs to Kamailio).
  function defaultURL() {
    var u = thisScript && thisScript.src ? new URL("ws", thisScript.src) : new URL("/ws", global.location.href);
    u.protocol = u.protocol === "https:" ? "wss:" : "ws:";
    u.search = "";
    u.hash = "";
    return u.toString();
  }

  function el(tag, className, text) {
    var e = doc.createElement(tag);
    if (className) e.className = className;
    if (text !== undefined) e.textContent = text;
    return e;
  }

  function button(className, text, title) {
    var b = el("button", className, text);
    b.type = "button";
    if (title) b.title = title;
    return b;
  }

  // safeURL accepts only http(s) URLs, so a CRM URL can never run script in the page.
  function safeURL(u) {
    try {
      var parsed = new URL(u, global.location.href);
      if (parsed.protocol === "http:" || parsed.protocol === "https:") return parsed.href;
    } catch (e) { /* fall through */ }
    return null;
  }

  function mediaType(ct) {
    return String(ct || "").split(";")[0].trim().toLowerCase();
  }

  // store wraps localStorage, which may be disabled (then every tab acts for itself).
  var store = {
    get: function (k) { try { return global.localStorage.getItem(k); } catch (e) { return null; } },
    set: function (k, v) { try { global.localStorage.setItem(k, v); return true; } catch (e) { return false; } },
    del: function (k) { try { global.localStorage.removeItem(k); } catch (e) { /* disabled */ } },
    // sweep removes claims left by tabs that died before cleaning up.
    sweep: function () {
      try {
        var now = Date.now();
        for (var i = global.localStorage.length - 1; i >= 0; i--) {
          var k = global.localStorage.key(i);
          if (!k || k.indexOf(KEY_PREFIX + "claim.") !== 0) continue;
          var at = Number(String(global.localStorage.getItem(k) || "").split(" ")[1] || 0);
          if (now - at > CLAIM_TTL) global.localStorage.removeItem(k);
        }
      } catch (e) { /* disabled */ }
    }
  };

  // tabID names this tab; kept in sessionStorage, it survives a reload of the tab (which
  // then keeps its claims and its lead) and is not shared with other tabs.
  var tabID = (function () {
    var id = null;
    try { id = global.sessionStorage.getItem(KEY_PREFIX + "tab"); } catch (e) { /* disabled */ }
    if (!id) {
      id = Math.random().toString(36).slice(2) + Date.now().toString(36);
      try { global.sessionStorage.setItem(KEY_PREFIX + "tab", id); } catch (e) { /* disabled */ }
    }
    return id;
  })();

  // claim lets one tab of the agent open a pop ("<tab> <ms>"); the key goes when the card goes.
  function claim(id) {
    if (claimedElsewhere(id)) return false;
    store.set(KEY_PREFIX + "claim." + id, tabID + " " + Date.now());
    return true;
  }

  // claimedElsewhere tells whether another tab claimed (and so opened) the pop.
  function claimedElsewhere(id) {
    var prev = String(store.get(KEY_PREFIX + "claim." + id) || "").split(" ");
    return prev.length === 2 && prev[0] !== tabID && Date.now() - Number(prev[1]) < CLAIM_TTL;
  }

  // Leadership among the agent's tabs.
  function newLeader() {
    var tab = tabID;
    var key = null;
    var timer = null;
    function read() {
      try { return JSON.parse(store.get(key) || "null"); } catch (e) { return null; }
    }
    function take(force) {
      if (!key) return;
      var v = read();
      if (force || !v || v.tab === tab || v.until < Date.now()) {
        store.set(key, JSON.stringify({ tab: tab, until: Date.now() + LEAD_TTL }));
      }
    }
    function onFocus() { if (doc.visibilityState !== "hidden") take(true); }
    function release() {
      var v = read();
      if (key && v && v.tab === tab) store.del(key);
    }
    return {
      start: function (agentID) {
        if (key) return;
        key = KEY_PREFIX + "lead." + agentID;
        take(false); // a new tab does not take the lead from a living one until focused
        timer = setInterval(function () { take(false); }, LEAD_TTL / 3);
        global.addEventListener("focus", onFocus);
        doc.addEventListener("visibilitychange", onFocus);
        global.addEventListener("pagehide", release);
      },
      // leads: this tab acts for the agent (no storage: every tab does).
      leads: function () {
        if (!key) return true;
        take(false);
        var v = read();
        return !v || v.tab === tab;
      },
      stop: function () {
        clearInterval(timer);
        global.removeEventListener("focus", onFocus);
        doc.removeEventListener("visibilitychange", onFocus);
        global.removeEventListener("pagehide", release);
        release();
        key = null;
      }
    };
  }

  // The CRM window new-tab pops reuse. Opening it needs a click (pop-up blockers); once
  // open, later pops navigate it. A CRM page sending Cross-Origin-Opener-Policy cuts the
  // link (the window then reads as closed) and pops fall back to the button.
  var crmWindow = null;
  function crmWindowOpen() { try { return !!crmWindow && !crmWindow.closed; } catch (e) { return false; } }
  function openCRMWindow(url) {
    var w = null;
    try { w = global.open(url || "about:blank", CRM_WINDOW); } catch (e) { w = null; }
    if (!w) return null;
    // The window keeps its opener: without it Chromium puts the CRM page in another
    // browsing context group and this page loses its handle on the window (as with a CRM
    // that sends Cross-Origin-Opener-Policy), so the next pop could not reuse it.
    try {
      if (!url || url === "about:blank") {
        w.document.title = "CRM";
        w.document.body.textContent = "oml-crm opens the CRM pages of your calls in this tab.";
      }
    } catch (e) { /* cross-origin already */ }
    crmWindow = w;
    return w;
  }

  var PANEL_CSS = [
    ".panel,.tab{font:14px/1.4 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#1d2430;text-align:left}",
    ".panel{position:absolute;top:0;right:0;bottom:0;display:flex;flex-direction:column;background:#f7f8fa;",
    "border-left:1px solid #d0d5dd;box-shadow:-4px 0 16px rgba(16,24,40,.12);box-sizing:border-box}",
    ".panel.collapsed{display:none}",
    ".grip{position:absolute;left:-4px;top:0;bottom:0;width:8px;cursor:ew-resize}",
    ".bar{display:flex;align-items:center;gap:8px;padding:8px 10px;background:#fff;border-bottom:1px solid #e4e7ec}",
    ".bar strong{font-size:15px}.state{font-size:12px;padding:2px 8px;border-radius:999px;background:#fef3f2;color:#b42318}",
    ".state.open{background:#ecfdf3;color:#067647}.state.connecting{background:#fffaeb;color:#b54708}",
    ".bar .sp{flex:1}",
    "button,a.omlcrm-open,a.omlcrm-tablink{font:inherit}",
    ".tool{border:1px solid #d0d5dd;background:#fff;border-radius:6px;padding:3px 9px;cursor:pointer;color:#344054}",
    ".allow{position:absolute;right:0;top:calc(40% - 44px);white-space:nowrap;border:0;background:#1570ef;color:#fff;",
    "border-radius:8px 0 0 8px;padding:6px 10px;cursor:pointer;font:600 13px system-ui,sans-serif}",
    ".allow[hidden]{display:none}.panel:not(.collapsed)~.allow{top:8px;right:52px;border-radius:6px}",
    ".cards{flex:1;overflow:auto;padding:10px}",
    ".empty{color:#667085;text-align:center;padding:32px 8px}",
    ".tab{position:absolute;right:0;top:40%;writing-mode:vertical-rl;border:1px solid #d0d5dd;border-right:0;",
    "background:#1570ef;color:#fff;border-radius:8px 0 0 8px;padding:12px 6px;cursor:pointer;font-weight:600}",
    ".tab[hidden]{display:none}",
    ".omlcrm-pop{background:#fff;border:1px solid #e4e7ec;border-radius:10px;margin-bottom:10px;overflow:hidden}",
    ".omlcrm-pop.omlcrm-ended{opacity:.8}",
    ".omlcrm-head{display:flex;align-items:center;gap:8px;padding:8px 10px;border-bottom:1px solid #e4e7ec;flex-wrap:wrap}",
    ".omlcrm-call{color:#667085;font-size:12px}",
    ".omlcrm-badge{font-size:11px;padding:1px 7px;border-radius:999px;background:#eef4ff;color:#3538cd}",
    ".omlcrm-badge.warn{background:#fffaeb;color:#b54708}",
    ".omlcrm-pin,.omlcrm-dismiss{border:0;background:none;cursor:pointer;color:#667085;font-size:13px;padding:0 4px}",
    ".omlcrm-pin{margin-left:auto}.omlcrm-pin[aria-pressed=true]{color:#1570ef;font-weight:700}",
    ".omlcrm-dismiss{font-size:20px}",
    ".omlcrm-actions{display:flex;align-items:center;gap:10px;padding:8px 10px;flex-wrap:wrap}",
    ".omlcrm-actions:empty{display:none}",
    ".omlcrm-open{display:inline-block;padding:6px 14px;border-radius:8px;border:0;background:#1570ef;color:#fff;",
    "font-weight:600;text-decoration:none;cursor:pointer}",
    ".omlcrm-status{color:#667085;font-size:13px}",
    ".omlcrm-tablink{font-size:12px;color:#1570ef;margin-left:auto}",
    ".omlcrm-iframe{display:block;width:100%;height:max(400px,calc(100vh - 190px));border:0;border-top:1px solid #e4e7ec;background:#fff}",
    ".omlcrm-response{margin:0;padding:8px 10px;background:#f2f4f7;font-size:12px;white-space:pre-wrap;word-break:break-all}"
  ].join("");

  // newPanel builds the docked panel in a shadow root and returns its parts.
  function newPanel(onAllow) {
    // A custom element: no page rule for div/section matches it, and inline !important
    // declarations beat the page's own !important ones.
    var host = el("oml-crm");
    host.id = "oml-crm-root";
    host.setAttribute("style", "all:initial !important;position:fixed !important;top:0 !important;" +
      "right:0 !important;bottom:0 !important;width:0 !important;z-index:2147483000 !important;display:block !important");
    doc.body.appendChild(host);
    var root = host.attachShadow({ mode: "open" });
    var style = el("style");
    style.textContent = PANEL_CSS;
    root.appendChild(style);
    var panel = el("section", "panel collapsed");
    panel.setAttribute("aria-label", "CRM");
    var width = Math.max(320, Math.min(680, global.innerWidth - 40));
    panel.style.width = width + "px";
    var grip = el("div", "grip");
    var bar = el("div", "bar");
    bar.appendChild(el("strong", "", "CRM"));
    var state = el("span", "state connecting", "connecting…");
    bar.appendChild(state);
    bar.appendChild(el("span", "sp"));
    // The prompt lives beside the panel, not in it: it must show while the panel is
    // collapsed too (at console load).
    var allow = button("allow", "Allow CRM tabs", "Opens the window where CRM pages open in a new tab");
    allow.hidden = true;
    allow.addEventListener("click", function () { onAllow(allow); });
    var collapse = button("tool collapse", "\u25b8", "Hide the CRM panel");
    bar.appendChild(collapse);
    var cards = el("div", "cards");
    var empty = el("p", "empty", "Waiting for a call. The CRM opens here when a call connects.");
    var list = el("div", "list");
    cards.appendChild(list);
    cards.appendChild(empty);
    panel.appendChild(grip);
    panel.appendChild(bar);
    panel.appendChild(cards);
    var tab = button("tab", "CRM", "Show the CRM panel");
    root.appendChild(panel);
    root.appendChild(allow);
    root.appendChild(tab);

    function show(open) {
      panel.classList.toggle("collapsed", !open);
      tab.hidden = open;
    }
    collapse.addEventListener("click", function () { show(false); });
    tab.addEventListener("click", function () { show(true); });
    // Drag the left edge to resize, within the window.
    grip.addEventListener("pointerdown", function (ev) {
      ev.preventDefault();
      try { grip.setPointerCapture(ev.pointerId); } catch (e) { /* not an active pointer */ }
      function move(e) {
        var w = Math.max(320, Math.min(global.innerWidth - 20, global.innerWidth - e.clientX));
        panel.style.width = w + "px";
      }
      function up() {
        grip.removeEventListener("pointermove", move);
        grip.removeEventListener("pointerup", up);
      }
      grip.addEventListener("pointermove", move);
      grip.addEventListener("pointerup", up);
    });
    return {
      root: root,
      list: list,
      show: show,
      allow: allow,
      refresh: function () {
        var n = list.children.length;
        empty.hidden = n > 0;
        tab.textContent = n ? "CRM (" + n + ")" : "CRM";
      },
      setState: function (s, text) { state.className = "state " + s; state.textContent = text; }
    };
  }

  function connect(opts) {
    opts = opts || {};
    var url = opts.url || defaultURL();
    var panel = opts.panel || null;
    var container = panel ? panel.list : (typeof opts.container === "string"
      ? doc.querySelector(opts.container) : opts.container);
    if (!container) container = doc.body;
    var onPop = opts.onPop || function () {};
    var onState = opts.onState || function () {};
    var clearAfter = opts.clearAfter === undefined ? CLEAR_AFTER : Number(opts.clearAfter);
    var maxCards = Number(opts.maxCards) > 0 ? Number(opts.maxCards) : MAX_CARDS;
    var leader = newLeader();

    var ws = null;
    var stopped = false;
    var attempt = 0;
    var retryTimer = null;
    var pingTimer = null;
    var pongTimer = null;
    var pops = {}; // id → {msg, card, actions, frameBox, opened, ended, pinned, timer}
    var order = []; // ids, oldest first

    store.sweep();

    function send(obj) {
      if (ws && ws.readyState === 1) ws.send(JSON.stringify(obj));
    }

    function setState(s, detail) {
      try { onState(s, detail || {}); } catch (e) { /* the page's handler must not break us */ }
    }

    function open() {
      if (stopped) return;
      var protocols = [SUBPROTOCOL];
      if (opts.token) protocols.push("token." + opts.token);
      setState("connecting", { attempt: attempt });
      try {
        ws = new global.WebSocket(url, protocols);
      } catch (e) {
        scheduleRetry();
        return;
      }
      ws.onmessage = function (ev) { onMessage(ev.data); };
      ws.onclose = function (ev) {
        clearInterval(pingTimer);
        clearTimeout(pongTimer);
        ws = null;
        setState("closed", { code: ev.code, reason: ev.reason });
        scheduleRetry();
      };
      ws.onopen = function () {
        pingTimer = setInterval(function () {
          send({ type: "ping" });
          clearTimeout(pongTimer);
          pongTimer = setTimeout(function () { if (ws) ws.close(); }, PONG_WAIT);
        }, PING_EVERY);
      };
    }

    function scheduleRetry() {
      if (stopped || retryTimer) return;
      var delay = Math.min(BACKOFF_MAX, BACKOFF_MIN * Math.pow(2, attempt));
      delay = delay / 2 + Math.random() * delay / 2; // jitter: pages do not reconnect in lockstep
      attempt++;
      retryTimer = setTimeout(function () { retryTimer = null; open(); }, delay);
    }

    function onMessage(data) {
      var msg;
      try { msg = JSON.parse(data); } catch (e) { return; }
      clearTimeout(pongTimer);
      switch (msg.type) {
        case "hello":
          attempt = 0;
          leader.start(msg.agent_id);
          setState("open", { agent_id: msg.agent_id, server_version: msg.server_version });
          break;
        case "crm.pop":
          handlePop(msg);
          break;
        case "pop.opened":
          if (pops[msg.id]) pops[msg.id].handled = true;
          settle(pops[msg.id], "Opened in another page");
          break;
        case "pop.withdrawn":
          if (pops[msg.id]) removeCard(pops[msg.id]);
          break;
        case "call.ended":
          Object.keys(pops).forEach(function (id) {
            var p = pops[id];
            if (p.msg.call_id === msg.call_id) callEnded(p);
          });
          break;
        default:
          break; // pong, error, future types
      }
    }

    // ack tells the hub this page is done with a pop, so a reload does not bring it back:
    // it was opened in a tab that outlives the page, its JSON was sent, or the agent
    // dismissed it. An embedded CRM is not acked: its iframe dies with the page, so a
    // reload mid-call gets the pop again.
    function ack(p) {
      if (p.acked) return;
      p.acked = true;
      send({ type: "ack", id: p.msg.id });
    }

    function handlePop(msg) {
      var prev = pops[msg.id];
      if (prev) {
        // A revision replaces the card while the agent has not opened it; a replay or an
        // older revision of a card shown already changes nothing.
        if (!((msg.rev || 0) > (prev.msg.rev || 0)) || prev.opened || prev.custom) return;
        var replacing = prev.card;
        forget(prev, false);
        show(msg, replacing);
        return;
      }
      // The earlier (ringing) pop is done with: acked, so a reload does not bring it back.
      var old = msg.replaces && pops[msg.replaces];
      var at = null;
      if (old) {
        if (old.card) at = old.card;
        forget(old, true);
      }
      show(msg, at);
    }

    function show(msg, at) {
      var p = { msg: msg, opened: false, ended: false, acked: false, pinned: false, handled: false, timer: null, wait: null };
      pops[msg.id] = p;
      order.push(msg.id);
      // A page that renders pops itself tells the hub when it opened one, and when it is
      // done with it.
      var api = {
        opened: function () { p.opened = true; send({ type: "opened", id: msg.id }); },
        ack: function () { ack(p); }
      };
      var custom;
      try { custom = onPop(msg, api); } catch (e) { custom = undefined; }
      if (custom === false) {
        p.custom = true;
        if (at && at.parentNode) at.remove();
        return;
      }
      render(p, at);
      bound();
      if (panel) { panel.refresh(); panel.show(true); }
    }

    // bound keeps at most maxCards cards: ended ones go first, then the oldest unpinned.
    function bound() {
      var live = order.filter(function (id) { return pops[id] && pops[id].card; });
      var excess = live.length - maxCards;
      if (excess <= 0) return;
      var victims = live.filter(function (id) { return pops[id].ended && !pops[id].pinned; })
        .concat(live.filter(function (id) { return !pops[id].ended && !pops[id].pinned; }));
      victims.slice(0, excess).forEach(function (id) { removeCard(pops[id]); });
    }

    function forget(p, ackIt) {
      clearTimeout(p.timer);
      clearTimeout(p.wait);
      if (ackIt) ack(p);
      delete pops[p.msg.id];
      order = order.filter(function (id) { return id !== p.msg.id; });
      store.del(KEY_PREFIX + "claim." + p.msg.id);
    }

    // removeCard takes a card off the page and forgets its pop (no replay: acked).
    function removeCard(p) {
      if (p.card) p.card.remove();
      forget(p, true);
      if (panel) panel.refresh();
    }

    function callEnded(p) {
      p.ended = true;
      if (!p.card) { forget(p, false); return; } // rendered by the page itself
      p.card.classList.add("omlcrm-ended");
      settle(p, p.opened ? "Call ended" : "Call ended before the CRM was opened");
      scheduleClear(p);
    }

    function scheduleClear(p) {
      clearTimeout(p.timer);
      if (!p.ended || p.pinned || !(clearAfter > 0)) return;
      p.timer = setTimeout(function () { if (pops[p.msg.id] === p) removeCard(p); }, clearAfter);
    }

    function render(p, at) {
      var msg = p.msg;
      var card = el("section", "omlcrm-pop");
      card.dataset.popId = msg.id;
      card.dataset.callId = msg.call_id;
      card.dataset.target = msg.target;
      card.dataset.trigger = msg.trigger;
      if (msg.rev) card.dataset.rev = String(msg.rev);
      var head = el("header", "omlcrm-head");
      head.appendChild(el("strong", "omlcrm-campaign", (msg.campaign && msg.campaign.name) || "CRM"));
      head.appendChild(el("span", "omlcrm-call", "call " + msg.call_id));
      if (msg.phase && msg.phase !== "connect") {
        head.appendChild(el("span", "omlcrm-badge omlcrm-phase", msg.phase === "ringing" ? "Ringing" : msg.phase));
      }
      if (msg.incomplete) {
        var missing = (msg.missing || []).join(", ");
        var badge = el("span", "omlcrm-badge warn omlcrm-incomplete", "Incomplete");
        badge.title = missing ? "Not known yet: " + missing : "Some values are not known yet";
        head.appendChild(badge);
      }
      var pin = button("omlcrm-pin", "Pin", "Keep this card after the call ends");
      pin.setAttribute("aria-pressed", "false");
      pin.addEventListener("click", function () {
        p.pinned = !p.pinned;
        pin.setAttribute("aria-pressed", String(p.pinned));
        if (p.pinned) clearTimeout(p.timer); else scheduleClear(p);
      });
      head.appendChild(pin);
      var dismiss = button("omlcrm-dismiss", "\u00d7", "Remove");
      dismiss.addEventListener("click", function () { removeCard(p); });
      head.appendChild(dismiss);
      card.appendChild(head);
      p.actions = el("div", "omlcrm-actions");
      p.frameBox = el("div", "omlcrm-frame");
      card.appendChild(p.actions);
      card.appendChild(p.frameBox);
      p.card = card;
      if (at && at.parentNode === container) container.replaceChild(card, at);
      else container.insertBefore(card, container.firstChild);

      // Automatic pops, and embedded ones opened before this page (re)loaded, open by
      // themselves in the one tab that acts for the agent.
      var automatic = msg.trigger === "automatic";
      var reopen = msg.replay && msg.opened && msg.target === "embedded" && !msg.frame_refused;
      if (!automatic && !reopen) {
        showButton(p, "button");
        return;
      }
      if (!leader.leads() || !claim(msg.id)) {
        // Another tab of this agent acts for it; the agent may still open it here.
        showButton(p, "button");
        status(p, "Opening in another tab…");
        awaitLeader(p);
        return;
      }
      openCRM(p, false);
    }

    // awaitLeader watches a pop left to the leading tab. Leadership can move between the
    // tabs' renders of one pop (the agent focuses another tab, a leader freezes or closes,
    // two tabs renew at once), leaving every tab sure another one acts; so until the pop
    // is opened somewhere (a claim in storage, or the hub's pop.opened), ends or goes,
    // this tab looks again and opens it once it leads.
    function awaitLeader(p) {
      clearTimeout(p.wait);
      p.wait = setTimeout(function () {
        p.wait = null;
        if (pops[p.msg.id] !== p || p.opened || p.ended || p.handled) return;
        if (claimedElsewhere(p.msg.id)) return; // the claiming tab opened it
        if (leader.leads() && claim(p.msg.id)) {
          openCRM(p, false);
          return;
        }
        awaitLeader(p);
      }, RECHECK);
    }

    // inTab tells whether opening p means a window outside the page.
    function inTab(p) {
      return p.msg.target === "new_tab" || (p.msg.target === "embedded" && p.msg.frame_refused);
    }

    // showButton offers "Open CRM" as a button (agent trigger) or a link (blocked pop-up).
    function showButton(p, kind) {
      clearActions(p);
      var msg = p.msg;
      var b;
      var target = safeURL(msg.request.url);
      var label = msg.target === "embedded" && msg.frame_refused ? "Open CRM in a tab" : "Open CRM";
      if (kind === "link" && msg.request.method === "GET" && inTab(p) && target) {
        b = el("a", "omlcrm-open", label);
        b.href = target;
        b.target = CRM_WINDOW;
        b.rel = "noopener";
      } else {
        b = button("omlcrm-open", label);
      }
      b.addEventListener("click", function (ev) {
        if (b.tagName === "A") { // the browser opens the link itself
          markOpened(p, "Opened in a new tab");
          ack(p);
          return;
        }
        ev.preventDefault();
        openCRM(p, true);
      });
      p.actions.appendChild(b);
      if (msg.target === "embedded" && msg.frame_refused) {
        status(p, "This CRM does not allow being shown inside the console");
      }
    }

    function clearActions(p) {
      while (p.actions.firstChild) p.actions.removeChild(p.actions.firstChild);
    }

    function status(p, text) {
      var s = p.actions.querySelector(".omlcrm-status");
      if (!s) { s = el("span", "omlcrm-status"); p.actions.appendChild(s); }
      s.textContent = text;
    }

    // settle removes the buttons of a pop (opened elsewhere, call ended).
    function settle(p, text) {
      if (!p || !p.card) return;
      var link = p.actions.querySelector(".omlcrm-tablink");
      clearActions(p);
      status(p, text);
      if (link) p.actions.appendChild(link);
    }

    function markOpened(p, text) {
      p.opened = true;
      clearActions(p);
      status(p, text);
      send({ type: "opened", id: p.msg.id });
    }

    // openCRM opens the pop's CRM; gesture tells whether a click started it.
    function openCRM(p, gesture) {
      var msg = p.msg;
      var req = msg.request;
      var target = safeURL(req.url);
      if (!target) { status(p, "Refused: the CRM URL is not http(s)"); return; }
      if (req.method === "POST" && mediaType(req.content_type) === "application/json") {
        sendJSON(p, target);
        return;
      }
      if (!inTab(p)) {
        while (p.frameBox.firstChild) p.frameBox.removeChild(p.frameBox.firstChild);
        var frame = el("iframe", "omlcrm-iframe");
        frame.name = "omlcrm-" + msg.id;
        frame.title = "CRM";
        frame.referrerPolicy = "no-referrer";
        p.frameBox.appendChild(frame);
        if (req.method === "GET") frame.src = target;
        else submitForm(p, target, frame.name);
        markOpened(p, "CRM opened below");
        // If the CRM turns out to refuse framing (not known beforehand), the agent has a way out.
        if (req.method === "GET") {
          var link = el("a", "omlcrm-tablink", "Open in a tab");
          link.href = target;
          link.target = CRM_WINDOW;
          link.rel = "noopener";
          p.actions.appendChild(link);
        }
        return;
      }
      // A window outside the page: the named CRM window, navigated when it is open already
      // (no pop-up), opened otherwise (needs the agent's click unless pop-ups are allowed).
      // A CRM meant to be embedded that refuses framing opens by itself only in a CRM window
      // the agent allowed; otherwise it waits for the agent's click.
      var w = crmWindowOpen() ? crmWindow : null;
      if (!w && !gesture && msg.target === "embedded") {
        showButton(p, "button");
        if (panel && !crmWindowOpen()) panel.allow.hidden = false;
        return;
      }
      if (req.method === "GET") {
        if (w) {
          try { w.location.href = target; } catch (e) { w = null; }
        }
        if (!w) w = openCRMWindow(target);
        if (!w) { blocked(p, gesture); return; }
      } else {
        if (!w) w = openCRMWindow("about:blank");
        if (!w) { blocked(p, gesture); return; }
        submitForm(p, target, CRM_WINDOW);
      }
      if (panel) panel.allow.hidden = true;
      markOpened(p, "Opened in a new tab");
      ack(p);
    }

    function blocked(p, gesture) {
      showButton(p, "link");
      if (gesture || !(p.msg.target === "embedded" && p.msg.frame_refused)) {
        status(p, gesture ? "The browser blocked the new tab" : "Pop-up blocked: click Open CRM");
      }
      if (panel && !crmWindowOpen()) panel.allow.hidden = false;
    }

    // submitForm posts the pop's fields to url into the browsing context named target.
    function submitForm(p, url, target) {
      var req = p.msg.request;
      var form = doc.createElement("form");
      form.method = "post";
      form.action = url;
      form.target = target;
      var mt = mediaType(req.content_type);
      form.enctype = mt === "multipart/form-data" || mt === "text/plain" ? mt : "application/x-www-form-urlencoded";
      form.acceptCharset = "UTF-8";
      form.style.display = "none";
      (req.fields || []).forEach(function (f) {
        var input = doc.createElement("input");
        input.type = "hidden";
        input.name = f[0];
        input.value = f[1];
        form.appendChild(input);
      });
      // Outside the page's DOM tree when there is a panel: the shadow root.
      (panel ? panel.root : doc.body).appendChild(form);
      form.submit();
      form.remove();
    }

    function sendJSON(p, url) {
      var req = p.msg.request;
      markOpened(p, "Sending to the CRM…");
      global.fetch(url, {
        method: "POST",
        headers: { "Content-Type": req.content_type || "application/json" },
        body: req.body || "{}",
        credentials: "omit",
        referrerPolicy: "no-referrer"
      }).then(function (resp) {
        return resp.text().then(function (text) {
          status(p, "CRM answered " + resp.status + (resp.ok ? " (ok)" : " (error)"));
          if (resp.ok) ack(p); // sent: a reload must not send it again
          if (text) {
            var pre = el("pre", "omlcrm-response", text.slice(0, 4000));
            p.frameBox.appendChild(pre);
          }
        });
      }, function (err) {
        status(p, "CRM request failed: " + (err && err.message ? err.message : err));
      });
    }

    open();

    return {
      close: function () {
        stopped = true;
        clearTimeout(retryTimer);
        clearInterval(pingTimer);
        clearTimeout(pongTimer);
        Object.keys(pops).forEach(function (id) { forget(pops[id], false); });
        leader.stop();
        if (ws) ws.close(1000, "page closed");
      },
      // pops returns the messages of the cards shown, oldest first.
      pops: function () { return order.map(function (id) { return pops[id].msg; }); },
      // leads tells whether this tab acts for the agent (automatic pops).
      leads: function () { return leader.leads(); }
    };
  }

  // autoStart connects the injected client: its own panel, its own settings.
  function autoStart() {
    var cfg = global.OmlCrmConfig || {};
    var ds = (thisScript && thisScript.dataset) || {};
    var opts = {
      clearAfter: cfg.clearAfter !== undefined ? cfg.clearAfter
        : (ds.clearAfter !== undefined ? Number(ds.clearAfter) * 1000 : undefined),
      maxCards: cfg.maxCards || ds.maxCards
    };
    var client = null;
    opts.panel = newPanel(function (allow) {
      if (openCRMWindow("about:blank")) allow.hidden = true;
    });
    opts.onState = function (s) {
      if (s === "open") opts.panel.setState("open", "connected");
      else if (s === "connecting") opts.panel.setState("connecting", "connecting…");
      else opts.panel.setState("closed", "disconnected");
    };
    opts.panel.allow.hidden = false; // the one-time prompt: a click lets new-tab pops open
    opts.panel.refresh();
    client = connect(opts);
    global.OmlCrm.auto = client;
    global.OmlCrm.panel = opts.panel;
  }

  global.OmlCrm = { connect: connect, version: "2" };
  if (thisScript && thisScript.getAttribute("data-oml-crm") === "auto" && doc) {
    if (doc.readyState === "loading") doc.addEventListener("DOMContentLoaded", autoStart);
    else autoStart();
  }
})(window);
