package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	iofs "io/fs"
	"net"
	"net/url"
	"os"
	"strings"
	"unicode/utf8"

	"github.com/nemidp/nemidp/idp/keyapp/deviceclient"
	"github.com/nemidp/nemidp/keys/codecard"
	"github.com/nemidp/nemidp/keys/device"
)

const activateAbout = `Activates this device for your NemID: a new device key is made here, and the IdP
registers its public key once you have given your user ID, password and the key from your
code card beside the key number the IdP names. The device's id and private key are written
to the state file (mode 0600). Values not given by flags are asked; the password is never
taken from the command line (other users can see it there).

A NemID still on its temporary activation password must log in once and choose its own
password first.`

func (a *App) activate(ctx context.Context, g *globals, args []string) error {
	fs := a.commandFlags(g, "activate", "activate [--user ID] [--password-file FILE | --password-stdin] [--key KEY | --card FILE] [--name NAME] [--force]", activateAbout)
	user := fs.String("user", "", "user ID: NemID number, CPR number or alias (asked when left out)")
	pwFile := fs.String("password-file", "", "read the password from the first line of `FILE`")
	pwStdin := fs.Bool("password-stdin", false, "read the password from the first line of standard input")
	key := fs.String("key", "", "the card `KEY` for the key number the IdP names (asked when left out; a card asks the same number until its key is used)")
	cardFile := fs.String("card", "", "look the key up in a code card as JSON: the operator API's answer or the demo's /demo/card (`FILE`)")
	name := fs.String("name", "", "device `NAME` the citizen and operators see (default: this host's name)")
	force := fs.Bool("force", false, "replace the device in an existing state file")
	if err := parse(fs, args); err != nil {
		return err
	}
	switch {
	case *pwFile != "" && *pwStdin:
		return usagef("activate: give --password-file or --password-stdin, not both")
	case *key != "" && *cardFile != "":
		return usagef("activate: give --key or --card, not both")
	case g.state == "":
		return usagef("activate: no state file: give --state FILE (neither XDG_CONFIG_HOME nor HOME is set)")
	}
	base, err := checkIdPURL(g.idp)
	if err != nil {
		return err
	}

	// Everything that can go wrong here goes wrong before the IdP is asked, so a mistake
	// never costs a card key.
	var replaced string
	if _, err := os.Lstat(g.state); err == nil {
		if !*force {
			what := "a device"
			if old, lerr := loadState(g.state); lerr == nil {
				what = fmt.Sprintf("device %s at %s", old.DeviceID, old.IdP)
			}
			return fmt.Errorf("%s already holds %s; give --force to activate a new device in its place", g.state, what)
		}
		replaced = "the device that was there"
		if old, lerr := loadState(g.state); lerr == nil {
			replaced = "device " + old.DeviceID
		}
	} else if !errors.Is(err, iofs.ErrNotExist) {
		return err
	}
	var card *codecard.Card
	if *cardFile != "" {
		if card, err = readCard(*cardFile); err != nil {
			return err
		}
	}
	var pw string
	switch {
	case *pwFile != "":
		raw, err := os.ReadFile(*pwFile)
		if err != nil {
			return fmt.Errorf("--password-file: %w", err)
		}
		pw, _, _ = strings.Cut(string(raw), "\n")
		pw = strings.TrimSuffix(pw, "\r")
		if pw == "" {
			return fmt.Errorf("--password-file %s: the first line is empty", *pwFile)
		}
	case *pwStdin:
		if pw, err = a.lines.read(ctx); err != nil {
			return fmt.Errorf("--password-stdin: %w", err)
		}
		if pw == "" {
			return errors.New("--password-stdin: the first line of standard input is empty")
		}
	}
	devName := strings.TrimSpace(*name)
	if devName == "" {
		devName = a.hostname()
	}
	if err := prepareStateDir(g.state); err != nil {
		return err
	}
	if u, _ := url.Parse(base); u.Scheme == "http" && !loopback(u.Hostname()) {
		fmt.Fprintf(a.Err, "warning: %s is plain http: your password and card key cross the network unencrypted\n", base)
	}

	uid := strings.TrimSpace(*user)
	if uid == "" {
		if uid, err = a.ask(ctx, "User ID: "); err != nil {
			return err
		}
		if uid == "" {
			return errors.New("no user ID given")
		}
	}
	if pw == "" {
		if pw, err = a.askSecret(ctx, "Password: "); err != nil {
			return err
		}
		if pw == "" {
			return errors.New("no password given")
		}
	}

	k, err := device.GenerateKey()
	if err != nil {
		return err
	}
	d := &deviceclient.Device{Base: base, Key: k, HTTP: a.HTTP, Now: a.Now}
	act, err := d.BeginActivation(ctx, uid, pw)
	if err != nil {
		return err
	}
	question := fmt.Sprintf("Key number %s on card %s: ", act.KeyNumber, act.CardSerial)
	cardKey := strings.TrimSpace(*key)
	switch {
	case card != nil:
		if card.Serial != act.CardSerial {
			return fmt.Errorf("the IdP asks for key number %s on card %s, but %s holds card %s; nothing was sent",
				act.KeyNumber, act.CardSerial, *cardFile, card.Serial)
		}
		for _, ck := range card.Keys {
			if ck.Number == act.KeyNumber {
				cardKey = ck.Key
			}
		}
		if cardKey == "" {
			return fmt.Errorf("card %s in %s has no key number %s", card.Serial, *cardFile, act.KeyNumber)
		}
		fmt.Fprintf(a.Err, "%s(from %s)\n", question, *cardFile)
	case cardKey != "":
		fmt.Fprintf(a.Err, "%s(from --key)\n", question)
	default:
		if cardKey, err = a.ask(ctx, question); err != nil {
			return err
		}
	}
	if err := d.CompleteActivation(ctx, act, cardKey, devName); err != nil {
		return err
	}
	pem, err := device.EncodePrivate(k)
	if err != nil {
		return err
	}
	st := &State{IdP: base, DeviceID: d.ID, DeviceName: devName, ActivatedAt: a.now().UTC().Truncate(1e9), PrivateKey: string(pem)}
	if err := saveState(g.state, st); err != nil {
		return fmt.Errorf("the IdP registered device %s, but its state could not be saved, so this device cannot use it: %w; "+
			"have an operator remove it (DELETE /admin/v1/citizens/{user_id}/devices/%s) and activate again", d.ID, err, d.ID)
	}
	fmt.Fprintf(a.Out, "Activated device %s (%q) at %s.\nState saved in %s.\n", d.ID, devName, base, g.state)
	if replaced != "" {
		fmt.Fprintf(a.Out, "It replaces %s in that file; the IdP keeps that one registered until an operator removes it.\n", replaced)
	}
	return nil
}

func (a *App) hostname() string {
	if a.Hostname != nil {
		if h, err := a.Hostname(); err == nil && h != "" {
			// The IdP takes names of at most 64 characters.
			for utf8.RuneCountInString(h) > 64 {
				_, n := utf8.DecodeLastRuneInString(h)
				h = h[:len(h)-n]
			}
			return h
		}
	}
	return "keyapp"
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// readCard reads a code card as JSON: {"card": {"serial", "keys"}} (the operator API's
// answer, the demo's /demo/card) or the card itself.
func readCard(path string) (*codecard.Card, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--card: %w", err)
	}
	var v struct {
		Card   *codecard.Card `json:"card"`
		Serial string         `json:"serial"`
		Keys   []codecard.Key `json:"keys"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, fmt.Errorf("--card %s: not JSON: %v", path, err)
	}
	c := v.Card
	if c == nil {
		c = &codecard.Card{Serial: v.Serial, Keys: v.Keys}
	}
	if c.Serial == "" || len(c.Keys) == 0 {
		return nil, fmt.Errorf("--card %s holds no card (want {\"card\": {\"serial\", \"keys\": [{\"number\", \"key\"}]}})", path)
	}
	return c, nil
}
