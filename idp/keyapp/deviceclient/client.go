// Package deviceclient is the device side of the key-app API (DESIGN.md §5 "Key-app API"): it
// activates a device key against an IdP, lists the pending approval requests and signs
// decisions. cmd/keyapp, the integration tests and the load driver all use it.
package deviceclient

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/nemidp/nemidp/keys/device"
)

// Device is one key-app device: its key and, once activated, its id.
type Device struct {
	// Base is the IdP's public base URL (its issuer).
	Base string
	ID   string
	Key  *ecdsa.PrivateKey
	HTTP *http.Client
	// Now is the device's clock (nil: time.Now).
	Now func() time.Time
}

// Error is a refusal from the IdP: {"error": {"code", "message"}} with its status.
type Error struct {
	Status       int
	Code         string `json:"code"`
	Message      string `json:"message"`
	AttemptsLeft *int   `json:"attempts_left,omitempty"`
}

func (e *Error) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message) }

// Request is a pending approval request as the device sees it.
type Request struct {
	ID           string   `json:"id"`
	ClientName   string   `json:"client_name"`
	Text         string   `json:"text"`
	BindingCodes []string `json:"binding_codes"`
	ExpiresAt    string   `json:"expires_at"`
}

// Activation is a started activation: the card key number to answer.
type Activation struct {
	ID         string `json:"activation"`
	KeyNumber  string `json:"key_number"`
	CardSerial string `json:"card_serial"`
}

func (d *Device) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

func (d *Device) client() *http.Client {
	if d.HTTP != nil {
		return d.HTTP
	}
	return http.DefaultClient
}

// Audience is what the device's JWTs name as aud.
func (d *Device) Audience() string { return strings.TrimSuffix(d.Base, "/") + "/keyapp" }

// call sends a JSON request and decodes a 2xx answer into out; any other answer is an *Error.
func (d *Device) call(ctx context.Context, method, path string, auth bool, body, out any) error {
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(d.Base, "/")+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if auth {
		tok, err := d.Token()
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := d.client().Do(req)
	if err != nil {
		return fmt.Errorf("keyapp: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("keyapp: %s %s: read: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error *Error `json:"error"`
		}
		if json.Unmarshal(raw, &e) == nil && e.Error != nil {
			e.Error.Status = resp.StatusCode
			return e.Error
		}
		return &Error{Status: resp.StatusCode, Code: "http_" + strconv.Itoa(resp.StatusCode), Message: strings.TrimSpace(string(raw))}
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("keyapp: %s %s: decode: %w", method, path, err)
		}
	}
	return nil
}

// Token is a fresh device JWT for one call.
func (d *Device) Token() (string, error) {
	if d.ID == "" {
		return "", fmt.Errorf("keyapp: the device is not activated")
	}
	return device.Sign(d.Key, d.ID, d.Audience(), d.now())
}

// BeginActivation sends the user ID and password; the answer names the card key to type.
func (d *Device) BeginActivation(ctx context.Context, username, password string) (*Activation, error) {
	var a Activation
	err := d.call(ctx, http.MethodPost, "/keyapp/v1/activations", false,
		map[string]string{"username": username, "password": password}, &a)
	if err != nil {
		return nil, err
	}
	return &a, nil
}

// CompleteActivation answers the card key with the device's public key and name; on success
// the device has its id.
func (d *Device) CompleteActivation(ctx context.Context, a *Activation, key, name string) error {
	var out struct {
		DeviceID string `json:"device_id"`
	}
	err := d.call(ctx, http.MethodPost, "/keyapp/v1/activations/"+url.PathEscape(a.ID), false,
		map[string]any{"key": key, "public_key": device.JWKOf(&d.Key.PublicKey), "device_name": name}, &out)
	if err != nil {
		return err
	}
	d.ID = out.DeviceID
	return nil
}

// Requests lists the pending requests, waiting up to wait for one when there is none.
func (d *Device) Requests(ctx context.Context, wait time.Duration) ([]Request, error) {
	var out struct {
		Requests []Request `json:"requests"`
	}
	path := "/keyapp/v1/requests"
	if wait > 0 {
		path += "?wait=" + strconv.Itoa(int(wait.Seconds()))
	}
	if err := d.call(ctx, http.MethodGet, path, true, nil, &out); err != nil {
		return nil, err
	}
	return out.Requests, nil
}

// Decide signs and sends a decision ("approve" with the binding code chosen, or "deny").
func (d *Device) Decide(ctx context.Context, requestID, decision, code string) error {
	jws, err := device.SignDecision(d.Key, requestID, decision, code, d.now())
	if err != nil {
		return err
	}
	return d.SendDecision(ctx, requestID, jws)
}

// SendDecision sends a decision already signed (to replay one, in tests).
func (d *Device) SendDecision(ctx context.Context, requestID, jws string) error {
	return d.call(ctx, http.MethodPost, "/keyapp/v1/requests/"+url.PathEscape(requestID), true,
		map[string]string{"decision": jws}, nil)
}
