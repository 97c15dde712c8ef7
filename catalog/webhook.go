package catalog

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// WebhookSecretPrefix starts every Standard Webhooks signing secret ("whsec_" followed by
// the base64 of the key), as the Standard Webhooks 1.0 specification writes them.
const WebhookSecretPrefix = "whsec_"

// Bounds of a Standard Webhooks key (the specification: between 24 and 64 bytes).
const (
	minWebhookKey = 24
	maxWebhookKey = 64
)

// WebhookKey decodes a "whsec_<base64>" secret into the HMAC key it stands for. The
// error says what is wrong without quoting the secret.
func WebhookKey(s Secret) ([]byte, error) {
	raw := s.Reveal()
	if !strings.HasPrefix(raw, WebhookSecretPrefix) {
		return nil, errors.New("a Standard Webhooks secret starts with whsec_ followed by the base64 of 24 to 64 random bytes (generate one with: echo whsec_$(head -c 32 /dev/urandom | base64))")
	}
	key, err := base64.StdEncoding.DecodeString(raw[len(WebhookSecretPrefix):])
	if err != nil {
		return nil, errors.New("the part after whsec_ is not standard base64")
	}
	if len(key) < minWebhookKey || len(key) > maxWebhookKey {
		return nil, fmt.Errorf("the key after whsec_ is %d bytes: want %d to %d", len(key), minWebhookKey, maxWebhookKey)
	}
	return key, nil
}
