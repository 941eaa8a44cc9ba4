// The page of the keyapp step: long-polls the login's key-app request so the page moves on by
// itself once the citizen approves (or denies) in the app. The page works without it (its
// "Check again" form). Reads the flow id and CSRF token from the form #keyapp.
(function () {
  'use strict';
  var form = document.getElementById('keyapp');
  if (!form || !window.fetch) return;
  var flow = form.getAttribute('data-flow'), csrf = form.getAttribute('data-csrf');
  var page = '/login/' + encodeURIComponent(flow);
  var backoff = [2000, 5000, 10000], failures = 0;

  function later(ms) { setTimeout(poll, ms); }

  function poll() {
    if (document.hidden) { // no polls from a hidden tab; look again when it is shown
      document.addEventListener('visibilitychange', function shown() {
        if (document.hidden) return;
        document.removeEventListener('visibilitychange', shown);
        poll();
      });
      return;
    }
    var started = Date.now();
    fetch(page + '/keyapp?wait=25', {
      method: 'POST', credentials: 'same-origin', body: '{}',
      headers: {'Accept': 'application/json', 'Content-Type': 'application/json', 'X-CSRF-Token': csrf}
    }).then(function (resp) {
      if (resp.status >= 500) throw new Error('HTTP ' + resp.status); // try again later
      return resp.json();
    }).then(function (v) {
      failures = 0;
      if (v.step === 'keyapp' && !v.error) {
        // Still pending. A server that answers at once is not asked more than every 2 s.
        later(Math.max(0, 2000 - (Date.now() - started)));
      } else if (v.step === 'done' && v.redirect_to) {
        location.assign(v.redirect_to);
      } else {
        // Anything else (denied, ran out, moved on): the login's page says what now. Not
        // location.reload(): this page may be the answer to a form POST.
        location.replace(page);
      }
    }).catch(function () {
      later(backoff[Math.min(failures++, backoff.length - 1)]);
    });
  }

  poll();
})();
