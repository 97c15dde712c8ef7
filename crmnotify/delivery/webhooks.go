package delivery

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/omlcrm/oml-crm/catalog"
)

// Standard Webhooks 1.0 headers, sent on every delivery beside Idempotency-Key.
const (
	// HeaderWebhookID is the message id: the notification id, identical on every retry
	// (equal to Idempotency-Key), so a receiver deduplicates on either.
	HeaderWebhookID = "webhook-id"
	// HeaderWebhookTimestamp is the attempt's time in Unix seconds; a receiver rejects
	// timestamps too far from its clock (replay protection).
	HeaderWebhookTimestamp = "webhook-timestamp"
	// HeaderWebhookSignature is a space-separated list of "v1,<base64 HMAC-SHA256 of
	// "<webhook-id>.<webhook-timestamp>.<body>">", one per whsec_ secret of the site
	// (several during a key rotation: the receiver accepts any that verifies). Sent
	// only when the site has webhook secrets.
	HeaderWebhookSignature = "webhook-signature"
)

// webhookKey is one decoded whsec_ secret.
type webhookKey []byte

// decodeWebhookSecrets decodes a site's whsec_ secrets; the error names the site and the
// secret's position, never the secret.
func decodeWebhookSecrets(siteID int, secrets []catalog.Secret) ([]webhookKey, error) {
	keys := make([]webhookKey, 0, len(secrets))
	for i, s := range secrets {
		k, err := catalog.WebhookKey(s)
		if err != nil {
			return nil, fmt.Errorf("site %d webhook secret #%d: %w", siteID, i+1, err)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// SignWebhook returns the webhook-signature value for (id, t, body) under each key:
// "v1,<sig1> v1,<sig2>". Empty when there is no key.
func signWebhook(keys []webhookKey, id string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	var b strings.Builder
	for i, k := range keys {
		mac := hmac.New(sha256.New, k)
		mac.Write([]byte(id))
		mac.Write([]byte("."))
		mac.Write([]byte(ts))
		mac.Write([]byte("."))
		mac.Write(body)
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString("v1,")
		b.WriteString(base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	}
	return b.String()
}
