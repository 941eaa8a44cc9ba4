package main

import (
	"crypto/ecdsa"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/nemidp/nemidp/keys/device"
)

// State is what the device keeps between runs: where it was activated, its id at that IdP
// and its private key. It is written once, by activate.
type State struct {
	// IdP is the IdP's public base URL (its issuer): the device JWTs name <IdP>/keyapp.
	IdP         string    `json:"idp"`
	DeviceID    string    `json:"device_id"`
	DeviceName  string    `json:"device_name"`
	ActivatedAt time.Time `json:"activated_at"`
	// PrivateKey is the device key as PEM (PKCS #8, keys/device EncodePrivate).
	PrivateKey string `json:"private_key"`

	key *ecdsa.PrivateKey
}

// defaultStatePath is $XDG_CONFIG_HOME/nemidp-keyapp/device.json, or
// ~/.config/nemidp-keyapp/device.json when XDG_CONFIG_HOME is unset or not absolute (as the
// XDG Base Directory spec says).
func defaultStatePath(getenv func(string) string) (string, error) {
	dir := getenv("XDG_CONFIG_HOME")
	if dir == "" || !filepath.IsAbs(dir) {
		home := getenv("HOME")
		if home == "" {
			return "", errors.New("neither XDG_CONFIG_HOME nor HOME is set: give --state FILE")
		}
		dir = filepath.Join(home, ".config")
	}
	return filepath.Join(dir, "nemidp-keyapp", "device.json"), nil
}

// errNoState: no device has been activated with this state file.
var errNoState = errors.New("no activated device")

// loadState reads the state file, refusing one that others may read or write: it holds the
// private key (ssh refuses such key files too).
func loadState(path string) (*State, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s does not exist; run `keyapp activate` first (or give --state FILE)", errNoState, path)
	}
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("state file %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("state file %s has mode %04o: other users may read the device's private key, so it is refused. "+
			"If nobody else could have read it, run `chmod 600 %s`; otherwise remove the device (operator: DELETE /admin/v1/citizens/{user_id}/devices/{device_id}) and activate again with --force",
			path, perm, path)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var s State
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, fmt.Errorf("state file %s is not valid JSON: %v", path, err)
	}
	if s.IdP == "" || s.DeviceID == "" || s.PrivateKey == "" {
		return nil, fmt.Errorf("state file %s lacks idp, device_id or private_key; activate again with --force", path)
	}
	if s.key, err = device.DecodePrivate([]byte(s.PrivateKey)); err != nil {
		return nil, fmt.Errorf("state file %s: %v", path, err)
	}
	return &s, nil
}

// prepareStateDir makes the state file's directory (0700 for the directories it creates) and
// checks a file can be written there, before an activation spends a card key.
func prepareStateDir(path string) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("cannot create the state directory: %w", err)
	}
	f, err := os.CreateTemp(dir, ".device-*.tmp")
	if err != nil {
		return fmt.Errorf("cannot write in the state directory %s: %w", dir, err)
	}
	name := f.Name()
	f.Close()
	return os.Remove(name)
}

// saveState writes the state file atomically (a temporary file in the same directory, synced,
// then renamed over the old one) with mode 0600.
func saveState(path string, s *State) (err error) {
	raw, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	raw = append(raw, '\n')
	if err := prepareStateDir(path); err != nil {
		return err
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".device-*.tmp") // created 0600
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(raw); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	// Sync the directory so the rename survives a crash (best effort: not every system can).
	if d, derr := os.Open(dir); derr == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
