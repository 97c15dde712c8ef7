// Package daemon assembles oml-crm's pipeline from its parts and runs it: the Asterisk
// client (AMI or ARI) feeding the call tracker, the tracker's connects handed through the
// intake to the CRM dispatcher, the dispatcher's notifications to the durable delivery
// queue (server trigger) or the agent websocket hub (agent trigger), and the HTTP
// listener serving the agent endpoints, /metrics, /healthz and /readyz. Dependencies that
// may come up after start-up (Asterisk, PostgreSQL, Redis) are retried in the background
// and reported by /readyz. `oml-crm run` and `oml-crm demo` both start it.
package daemon
