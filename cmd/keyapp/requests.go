package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nemidp/nemidp/idp/keyapp/deviceclient"
	"github.com/nemidp/nemidp/keys/device"
)

// maxPoll is the longest one long-poll waits at the IdP (flows.MaxWait); longer waits are
// several polls.
const maxPoll = 30 * time.Second

const requestsAbout = `Lists the login requests waiting for this device's NemID: the relying party, the text
the app shows, the three binding codes (one of them is the code the browser shows) and when
the request runs out.`

func (a *App) requests(ctx context.Context, g *globals, args []string) error {
	fs := a.commandFlags(g, "requests", "requests [--wait SECONDS] [--json]", requestsAbout)
	wait := fs.Int("wait", 0, "when none is pending, wait up to `SECONDS` for a request")
	asJSON := fs.Bool("json", false, `print {"requests": [{"id", "client_name", "text", "binding_codes", "expires_at"}]} for scripts`)
	if err := parse(fs, args); err != nil {
		return err
	}
	if *wait < 0 {
		return usagef("requests: --wait must be 0 or more seconds")
	}
	d, _, err := a.device(g)
	if err != nil {
		return err
	}
	list, err := a.pending(ctx, d, time.Duration(*wait)*time.Second)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(a.Out)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{"requests": list})
	}
	switch len(list) {
	case 0:
		fmt.Fprintln(a.Out, "No pending login requests.")
	case 1:
		fmt.Fprintln(a.Out, "1 pending login request:")
	default:
		fmt.Fprintf(a.Out, "%d pending login requests, oldest first:\n", len(list))
	}
	for i, r := range list {
		fmt.Fprintln(a.Out)
		a.show(r, i+1, len(list))
	}
	return nil
}

// pending lists the pending requests, oldest first. When there is none it waits up to wait
// for one (in long-polls of at most maxPoll).
func (a *App) pending(ctx context.Context, d *deviceclient.Device, wait time.Duration) ([]deviceclient.Request, error) {
	deadline := time.Now().Add(wait)
	for {
		poll := min(time.Until(deadline), maxPoll).Truncate(time.Second)
		list, err := d.Requests(ctx, max(poll, 0))
		if err != nil {
			return nil, err
		}
		if len(list) > 0 || poll <= 0 {
			slices.SortStableFunc(list, func(x, y deviceclient.Request) int {
				return expiry(x).Compare(expiry(y))
			})
			if list == nil {
				list = []deviceclient.Request{}
			}
			return list, nil
		}
	}
}

func expiry(r deviceclient.Request) time.Time {
	t, _ := time.Parse(time.RFC3339, r.ExpiresAt)
	return t
}

// expiresIn is "expires in 1m42s" (or "has expired").
func (a *App) expiresIn(r deviceclient.Request) string {
	t := expiry(r)
	if t.IsZero() {
		return "expires at " + r.ExpiresAt
	}
	left := t.Sub(a.now()).Round(time.Second)
	if left <= 0 {
		return "has expired"
	}
	return "expires in " + left.String()
}

// show prints one request (number n of count, when there are several).
func (a *App) show(r deviceclient.Request, n, count int) {
	prefix := "  "
	if count > 1 {
		prefix = fmt.Sprintf("%d.", n)
		prefix += strings.Repeat(" ", max(1, 3-len(prefix)))
	}
	name := r.ClientName
	if name == "" {
		name = "NemID"
	}
	fmt.Fprintf(a.Out, "%s%s — %s\n", prefix, name, r.Text)
	fmt.Fprintf(a.Out, "   codes: %s   %s\n", strings.Join(r.BindingCodes, "  "), a.expiresIn(r))
	fmt.Fprintf(a.Out, "   id: %s\n", r.ID)
}

const approveAbout = `Approves a login request. Without --approve it shows the pending request (asking which,
when there are several) and asks you to choose the code your browser shows; choose only the
code you see in your own browser: a login you did not start must be denied.

With --approve CODE it approves the oldest pending request (or the one --request names)
with that code, asking nothing; --deny denies it instead.`

const denyAbout = `Denies a login request: the oldest pending one, or the one --request names (on a terminal,
with several pending, it asks which). The login fails in the browser.`

// decide is `approve` and `deny`.
func (a *App) decide(ctx context.Context, g *globals, verb string, args []string) error {
	var fsUsage, about string
	if verb == device.Approve {
		fsUsage, about = "approve [--approve CODE | --deny] [--request ID] [--wait SECONDS]", approveAbout
	} else {
		fsUsage, about = "deny [--request ID] [--wait SECONDS]", denyAbout
	}
	fs := a.commandFlags(g, verb, fsUsage, about)
	var code string
	deny := verb == device.Deny
	if verb == device.Approve {
		fs.StringVar(&code, "approve", "", "approve with the binding `CODE` your browser shows, asking nothing")
		fs.StringVar(&code, "code", "", "the same as --approve `CODE`")
		fs.BoolVar(&deny, "deny", false, "deny instead, asking nothing")
	}
	reqID := fs.String("request", "", "the request `ID` to decide (default: the only or oldest pending one)")
	wait := fs.Int("wait", 30, "when none is pending, wait up to `SECONDS` for a request")
	if err := parse(fs, args); err != nil {
		return err
	}
	code = strings.TrimSpace(code)
	switch {
	case code != "" && deny:
		return usagef("approve: give --approve CODE or --deny, not both")
	case *wait < 0:
		return usagef("%s: --wait must be 0 or more seconds", verb)
	case code == "" && !deny && !a.Terminal:
		return usagef("approve: standard input is not a terminal, so the code cannot be asked: give --approve CODE (the code your browser shows) or --deny")
	}
	d, _, err := a.device(g)
	if err != nil {
		return err
	}

	list, err := a.pending(ctx, d, 0)
	if err != nil {
		return err
	}
	if len(list) == 0 && *wait > 0 {
		fmt.Fprintf(a.Err, "No pending login request; waiting up to %ds for one…\n", *wait)
		if list, err = a.pending(ctx, d, time.Duration(*wait)*time.Second); err != nil {
			return err
		}
	}
	if len(list) == 0 {
		return errors.New("no pending login request")
	}
	var r deviceclient.Request
	switch {
	case *reqID != "":
		i := slices.IndexFunc(list, func(r deviceclient.Request) bool { return r.ID == *reqID })
		if i < 0 {
			return fmt.Errorf("request %s is not pending (it was decided, ran out or never was this NemID's); see `keyapp requests`", *reqID)
		}
		r = list[i]
	case len(list) == 1 || !a.Terminal || code != "":
		r = list[0]
		if len(list) > 1 {
			fmt.Fprintf(a.Err, "%d requests are pending; deciding the oldest (--request ID chooses another).\n", len(list))
		}
	default:
		if r, err = a.choose(ctx, list); err != nil {
			return err
		}
	}

	switch {
	case deny:
		a.show(r, 1, 1)
		return a.send(ctx, d, r, device.Deny, "")
	case code != "":
		a.show(r, 1, 1)
		if !slices.Contains(r.BindingCodes, code) {
			return fmt.Errorf("%q is not one of this request's codes (%s); nothing was sent", code, strings.Join(r.BindingCodes, " "))
		}
		return a.send(ctx, d, r, device.Approve, code)
	}
	if err := a.answer(ctx, d, r); !errors.Is(err, errNotNow) {
		return err
	}
	return nil
}

// choose asks which of several requests to decide.
func (a *App) choose(ctx context.Context, list []deviceclient.Request) (deviceclient.Request, error) {
	fmt.Fprintf(a.Out, "%d pending login requests, oldest first:\n", len(list))
	for i, r := range list {
		fmt.Fprintln(a.Out)
		a.show(r, i+1, len(list))
	}
	for range 3 {
		s, err := a.ask(ctx, fmt.Sprintf("\nWhich request? [1-%d]: ", len(list)))
		if err != nil {
			return deviceclient.Request{}, err
		}
		if n, err := strconv.Atoi(s); err == nil && n >= 1 && n <= len(list) {
			return list[n-1], nil
		}
		fmt.Fprintf(a.Err, "Type a number from 1 to %d.\n", len(list))
	}
	return deviceclient.Request{}, errors.New("no request chosen")
}

// errNotNow: the citizen left the request undecided.
var errNotNow = errors.New("not decided")

// answer shows a request and asks for the code the browser shows: approve with it, deny, or
// leave it for now.
func (a *App) answer(ctx context.Context, d *deviceclient.Device, r deviceclient.Request) error {
	fmt.Fprintln(a.Out)
	a.show(r, 1, 1)
	question := fmt.Sprintf("\nWhich code does your browser show? [%s; d: deny; Enter: not now]: ", strings.Join(r.BindingCodes, " / "))
	for range 3 {
		s, err := a.ask(ctx, question)
		if err != nil {
			return err
		}
		switch strings.ToLower(s) {
		case "":
			fmt.Fprintln(a.Out, "Not decided: the request stays pending until it runs out.")
			return errNotNow
		case "d", "deny", "n", "no":
			return a.send(ctx, d, r, device.Deny, "")
		}
		if slices.Contains(r.BindingCodes, s) {
			return a.send(ctx, d, r, device.Approve, s)
		}
		fmt.Fprintf(a.Err, "%q is not one of the codes %s. Choose the one your browser shows; if it shows none of them, deny.\n",
			s, strings.Join(r.BindingCodes, ", "))
	}
	return errors.New("no code chosen; the request stays pending until it runs out")
}

// send signs and sends the decision and says what came of it.
func (a *App) send(ctx context.Context, d *deviceclient.Device, r deviceclient.Request, decision, code string) error {
	if err := d.Decide(ctx, r.ID, decision, code); err != nil {
		return err
	}
	name := r.ClientName
	if name == "" {
		name = "NemID"
	}
	if decision == device.Approve {
		fmt.Fprintf(a.Out, "Approved with code %s: the login at %s goes on in your browser.\n", code, name)
	} else {
		fmt.Fprintf(a.Out, "Denied: the login at %s was stopped.\n", name)
	}
	return nil
}

const watchAbout = `Waits for login requests and asks, for each one as it comes, for the code your browser
shows (or d to deny, Enter to leave it). Stop it with Ctrl-C. It needs a terminal; scripts use
'keyapp requests --wait N --json' and 'keyapp approve --request ID --approve CODE'.`

func (a *App) watch(ctx context.Context, g *globals, args []string) error {
	fs := a.commandFlags(g, "watch", "watch", watchAbout)
	if err := parse(fs, args); err != nil {
		return err
	}
	if !a.Terminal {
		return usagef("watch: standard input is not a terminal, so nothing can be asked; scripts use `keyapp requests --wait N --json` and `keyapp approve --request ID --approve CODE`")
	}
	d, st, err := a.device(g)
	if err != nil {
		return err
	}
	fmt.Fprintf(a.Err, "Waiting for login requests for device %s at %s (Ctrl-C stops).\n", st.DeviceID, st.IdP)
	asked := map[string]bool{}
	backoff := time.Second
	for {
		list, err := d.Requests(ctx, maxPoll)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			var de *deviceclient.Error
			if errors.As(err, &de) && de.Status != http.StatusServiceUnavailable && de.Status != http.StatusTooManyRequests && de.Status < 500 {
				return err // refused: the device is unknown, removed, or the call is wrong
			}
			fmt.Fprintf(a.Err, "keyapp: %s; trying again in %s\n", describe(err), backoff)
			if !sleep(ctx, backoff) {
				return nil
			}
			backoff = min(2*backoff, maxPoll)
			continue
		}
		backoff = time.Second
		slices.SortStableFunc(list, func(x, y deviceclient.Request) int { return expiry(x).Compare(expiry(y)) })
		pendingNow := map[string]bool{}
		fresh := 0
		for _, r := range list {
			pendingNow[r.ID] = true
			if asked[r.ID] {
				continue
			}
			asked[r.ID] = true
			fresh++
			err := a.answer(ctx, d, r)
			var de *deviceclient.Error
			switch {
			case ctx.Err() != nil, errors.Is(err, errNoInput):
				return nil
			case errors.As(err, &de):
				fmt.Fprintln(a.Err, "keyapp:", describe(err))
			case err != nil && !errors.Is(err, errNotNow):
				fmt.Fprintln(a.Err, "keyapp:", describe(err))
			}
		}
		for id := range asked {
			if !pendingNow[id] {
				delete(asked, id) // decided or gone: forget it
			}
		}
		if fresh == 0 && len(list) > 0 {
			// Only requests left for later are pending: the IdP answers at once while any is,
			// so look again in a while instead of asking it in a loop.
			if !sleep(ctx, 3*time.Second) {
				return nil
			}
		} else if len(list) > 0 {
			fmt.Fprintln(a.Err, "\nWaiting for login requests…")
		}
	}
}

// sleep waits d or until ctx ends (false).
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
