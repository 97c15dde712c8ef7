// The demo agent page: connects with ?token= (kept in sessionStorage and removed from the
// address bar, so a reload still works and the token does not linger in history) or with
// the OMniLeads session cookie, and shows the pops with OmlCrm's default rendering.
(function () {
  "use strict";
  var q = new URLSearchParams(location.search);
  var token = q.get("token");
  try {
    if (token) {
      sessionStorage.setItem("omlcrm.token", token);
      q.delete("token");
      var rest = q.toString();
      history.replaceState(null, "", location.pathname + (rest ? "?" + rest : "") + location.hash);
    } else {
      token = sessionStorage.getItem("omlcrm.token");
    }
  } catch (e) { /* storage disabled: the token stays in the URL */ }
  var wanted = q.get("agent");
  var agentEl = document.getElementById("agent");
  var stateEl = document.getElementById("state");
  if (wanted) agentEl.textContent = "agent " + wanted;

  window.omlcrmClient = OmlCrm.connect({
    container: "#pops",
    token: token || undefined,
    onState: function (state, d) {
      stateEl.className = state;
      if (state === "open") {
        stateEl.textContent = "connected";
        agentEl.textContent = "agent " + d.agent_id +
          (wanted && String(d.agent_id) !== wanted ? " (the URL asked for agent " + wanted + ")" : "");
      } else if (state === "connecting") {
        stateEl.textContent = "connecting…";
      } else {
        stateEl.textContent = "disconnected" + (d.reason ? ": " + d.reason : "");
      }
    }
  });
})();
