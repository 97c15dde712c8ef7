/*
 * oml-crm.js: the oml-crm browser client. No dependencies; embeddable in any page.
 *
 *   var client = OmlCrm.connect({
 *     url: "wss://host/ws",          // default: "ws" beside this script (/oml-crm/oml-crm.js → /oml-crm/ws)
 *     container: "#crm",             // element or selector where pops are rendered
 *     token: "v1.…",                 // agent token (omit with the OMniLeads session cookie)
 *     onPop: function (pop, api) {}, // return false to render it yourself (then call api.opened(),
 *                                    // and api.ack() once the page is done with it)
 *     onState: function (state, detail) {} // "connecting" | "open" | "closed"
 *   });
 *   client.close();
 *
 * A pop (server message crm.pop) is rendered as: target "embedded" → an <iframe> in the
 * container (POST: a generated <form> submitted into it); target "new_tab" → window.open
 * (POST: a form aimed at the new tab), with a visible "Open CRM" link when the browser
 * blocks the pop-up; trigger "agent" → an "Open CRM" button that does the same on click;
 * a JSON POST is sent with fetch and its outcome shown. Values are always set as DOM
 * properties, never written as HTML.
 */
(function (global) {
  "use strict";

  var SUBPROTOCOL = "omlcrm.v1";
  var PING_EVERY = 25000; // application ping: detects dead connections the browser would not
  var PONG_WAIT = 10000;
  var BACKOFF_MIN = 500;
  var BACKOFF_MAX = 30000;
  var CLAIM_TTL = 120000; // how long a tab's claim to open a new-tab pop holds

  var thisScript = global.document && global.document.currentScript;

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
    var e = global.document.createElement(tag);
    if (className) e.className = className;
    if (text !== undefined) e.textContent = text;
    return e;
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

  // claim lets one page of the agent (several tabs share localStorage) open a new tab.
  function claim(id) {
    try {
      var key = "omlcrm.claim." + id;
      var now = Date.now();
      var prev = Number(global.localStorage.getItem(key) || 0);
      if (prev && now - prev < CLAIM_TTL) return false;
      global.localStorage.setItem(key, String(now));
    } catch (e) { /* storage disabled: open anyway */ }
    return true;
  }

  function connect(opts) {
    opts = opts || {};
    var url = opts.url || defaultURL();
    var container = typeof opts.container === "string"
      ? global.document.querySelector(opts.container) : opts.container;
    if (!container) container = global.document.body;
    var onPop = opts.onPop || function () {};
    var onState = opts.onState || function () {};

    var ws = null;
    var stopped = false;
    var attempt = 0;
    var retryTimer = null;
    var pingTimer = null;
    var pongTimer = null;
    var pops = {}; // id → {msg, card, actions, frameBox, opened, ended}

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
          setState("open", { agent_id: msg.agent_id, server_version: msg.server_version });
          break;
        case "crm.pop":
          handlePop(msg);
          break;
        case "pop.opened":
          settle(pops[msg.id], "Opened in another page");
          break;
        case "call.ended":
          Object.keys(pops).forEach(function (id) {
            var p = pops[id];
            if (p.msg.call_id === msg.call_id) {
              p.ended = true;
              p.card.classList.add("omlcrm-ended");
              settle(p, p.opened ? "Call ended" : "Call ended before the CRM was opened");
            }
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
      if (pops[msg.id]) return; // replayed after a reconnect of this same page: shown already
      var p = { msg: msg, opened: false, ended: false, acked: false };
      pops[msg.id] = p;
      // A page that renders pops itself tells the hub when it opened one, and when it is
      // done with it.
      var api = {
        opened: function () { p.opened = true; send({ type: "opened", id: msg.id }); },
        ack: function () { ack(p); }
      };
      var custom;
      try { custom = onPop(msg, api); } catch (e) { custom = undefined; }
      if (custom === false) return;
      render(p);
    }

    function render(p) {
      var msg = p.msg;
      var card = el("section", "omlcrm-pop");
      card.dataset.popId = msg.id;
      card.dataset.callId = msg.call_id;
      card.dataset.target = msg.target;
      card.dataset.trigger = msg.trigger;
      var head = el("header", "omlcrm-head");
      head.appendChild(el("strong", "omlcrm-campaign", (msg.campaign && msg.campaign.name) || "CRM"));
      head.appendChild(el("span", "omlcrm-call", "call " + msg.call_id));
      var dismiss = el("button", "omlcrm-dismiss", "\u00d7");
      dismiss.type = "button";
      dismiss.title = "Remove";
      dismiss.addEventListener("click", function () { card.remove(); ack(p); });
      head.appendChild(dismiss);
      card.appendChild(head);
      p.actions = el("div", "omlcrm-actions");
      p.frameBox = el("div", "omlcrm-frame");
      card.appendChild(p.actions);
      card.appendChild(p.frameBox);
      p.card = card;
      container.insertBefore(card, container.firstChild);

      var direct = msg.trigger === "automatic" || (msg.replay && msg.opened && msg.target === "embedded");
      if (!direct) {
        showButton(p, "button");
        return;
      }
      if (msg.target === "new_tab" && !msg.replay && !claim(msg.id)) {
        // Another page of this agent is opening it; offer the link in case it does not.
        showButton(p, "link");
        status(p, "Opening in another page…");
        return;
      }
      openCRM(p, false);
    }

    // showButton offers "Open CRM" as a button (agent trigger) or a link (blocked pop-up).
    function showButton(p, kind) {
      clearActions(p);
      var msg = p.msg;
      var b;
      var target = safeURL(msg.request.url);
      if (kind === "link" && msg.request.method === "GET" && msg.target === "new_tab" && target) {
        b = el("a", "omlcrm-open", "Open CRM");
        b.href = target;
        b.target = "_blank";
        b.rel = "noopener";
      } else {
        b = el("button", "omlcrm-open", "Open CRM");
        b.type = "button";
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
      clearActions(p);
      status(p, text);
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
      if (msg.target === "embedded") {
        while (p.frameBox.firstChild) p.frameBox.removeChild(p.frameBox.firstChild);
        var frame = el("iframe", "omlcrm-iframe");
        frame.name = "omlcrm-" + msg.id;
        frame.title = "CRM";
        frame.referrerPolicy = "no-referrer";
        p.frameBox.appendChild(frame);
        if (req.method === "GET") frame.src = target;
        else submitForm(p, target, frame.name);
        markOpened(p, "CRM opened below");
        return;
      }
      // New tab.
      if (req.method === "GET") {
        var w = global.open(target, "_blank");
        if (!w) { blocked(p, gesture); return; }
        try { w.opener = null; } catch (e) { /* cross-origin already */ }
      } else {
        var name = "omlcrm-" + msg.id;
        var tab = global.open("", name);
        if (!tab) { blocked(p, gesture); return; }
        submitForm(p, target, name);
      }
      markOpened(p, "Opened in a new tab");
      ack(p);
    }

    function blocked(p, gesture) {
      showButton(p, "link");
      status(p, gesture ? "The browser blocked the new tab" : "Pop-up blocked: click Open CRM");
    }

    // submitForm posts the pop's fields to url into the browsing context named target.
    function submitForm(p, url, target) {
      var req = p.msg.request;
      var form = global.document.createElement("form");
      form.method = "post";
      form.action = url;
      form.target = target;
      var mt = mediaType(req.content_type);
      form.enctype = mt === "multipart/form-data" || mt === "text/plain" ? mt : "application/x-www-form-urlencoded";
      form.acceptCharset = "UTF-8";
      form.style.display = "none";
      (req.fields || []).forEach(function (f) {
        var input = global.document.createElement("input");
        input.type = "hidden";
        input.name = f[0];
        input.value = f[1];
        form.appendChild(input);
      });
      global.document.body.appendChild(form);
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
        if (ws) ws.close(1000, "page closed");
      },
      // pops returns the messages received so far, newest last.
      pops: function () { return Object.keys(pops).map(function (id) { return pops[id].msg; }); }
    };
  }

  global.OmlCrm = { connect: connect, version: "1" };
})(window);
