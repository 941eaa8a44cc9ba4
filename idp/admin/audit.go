package admin

import (
	"net/http"

	"github.com/nemidp/nemidp/idp/audit"
	"github.com/nemidp/nemidp/idp/cpr"
)

// operatorKey holds, in a let-through call's context, the label of the operator's token.
type operatorKey struct{}

// Operator is the label of the operator whose token let r through ("" before auth).
func Operator(r *http.Request) string {
	label, _ := r.Context().Value(operatorKey{}).(string)
	return label
}

// audit writes the audit line of an operator call that changed something: the operator is
// named by its token's label, uid is the citizen affected ("" for none).
func (a *API) audit(w http.ResponseWriter, r *http.Request, what, uid string, detail map[string]any) {
	a.Audit.Log(w, r, audit.Event{By: audit.ByOperator, Who: Operator(r), What: what, UserID: uid, Detail: detail})
}

// refused writes the audit line of a refused operator call: its error code, status and route,
// and the citizen of its path when that is a NemID number.
func (a *API) refused(w http.ResponseWriter, r *http.Request, status int, code string) {
	ev := audit.Event{By: audit.ByOperator, Who: Operator(r), What: "operator.refused", UserID: pathUser(r),
		Detail: map[string]any{"code": code, "status": status, "method": r.Method, "route": r.Pattern}}
	if ev.Who == "" {
		ev.By = audit.ByAnonymous // no valid token (401, or throttled before it was checked)
	}
	a.Audit.Log(w, r, ev)
}

// pathUser is the {user_id} of r's path when it looks like a NemID number (9–10 digits) and
// cannot be a CPR number: an operator may type a CPR number there by mistake, and a CPR number
// never reaches a log line.
func pathUser(r *http.Request) string {
	uid := r.PathValue("user_id")
	if len(uid) < 9 || len(uid) > 10 {
		return ""
	}
	for _, c := range uid {
		if c < '0' || c > '9' {
			return ""
		}
	}
	if _, err := cpr.Parse(uid); err == nil {
		return ""
	}
	return uid
}
