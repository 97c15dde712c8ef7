package agentws

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"net/http"
)

// assets are the browser files the hub serves.
//
//go:embed oml-crm.js agent.js agent.html
var assets embed.FS

// assetETag is a strong validator of an embedded file, computed per request (files are tiny).
func assetETag(b []byte) string {
	sum := sha256.Sum256(b)
	return `"` + hex.EncodeToString(sum[:8]) + `"`
}

func serveAsset(name, contentType string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		b, err := assets.ReadFile(name)
		if err != nil {
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		tag := assetETag(b)
		w.Header().Set("Content-Type", contentType)
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("ETag", tag)
		w.Header().Set("X-Content-Type-Options", "nosniff")
		// The client is meant to be embedded in other origins' pages.
		w.Header().Set("Cross-Origin-Resource-Policy", "cross-origin")
		if r.Header.Get("If-None-Match") == tag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		_, _ = w.Write(b)
	}
}

// serveAgentPage serves the demo agent page under a strict content security policy:
// scripts only from the hub, frames and requests to any http(s) CRM.
func serveAgentPage(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "+
		"frame-src http: https:; connect-src 'self' ws: wss: http: https:; form-action http: https:; img-src 'self' data:; base-uri 'none'")
	w.Header().Set("Referrer-Policy", "no-referrer")
	serveAsset("agent.html", "text/html; charset=utf-8")(w, r)
}
