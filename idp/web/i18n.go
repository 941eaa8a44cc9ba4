package web

import (
	"cmp"
	"net/http"
	"slices"
	"strings"

	"golang.org/x/text/language"
)

// Languages: Danish is the default, English on request.
const (
	langDA = "da"
	langEN = "en"
)

var texts = map[string]map[string]string{
	langDA: {
		"title":                "Log på med NemID",
		"for":                  "Du logger på hos",
		"username":             "Bruger-id",
		"username_hint":        "NemID-nummer eller CPR-nummer",
		"password":             "Adgangskode",
		"next":                 "Næste",
		"login":                "Log på",
		"codecard_intro":       "Find nøglen ud for dette nøglenummer på dit nøglekort",
		"card":                 "Nøglekort",
		"key_number":           "Nøglenummer",
		"key":                  "Nøgle",
		"new_password":         "Vælg din egen adgangskode",
		"new_password_why":     "Du har logget på med en midlertidig adgangskode. Vælg nu din egen.",
		"rules":                "4 cifre (ikke ens, ikke fortløbende, ikke fra dit CPR-nummer) eller 6–40 tegn med både bogstaver og tal.",
		"save":                 "Gem og fortsæt",
		"act_as_title":         "Hvem logger du på for?",
		"act_as_intro":         "Du er værge. Vælg, om du logger på for dig selv eller for en, du er værge for.",
		"act_as_legend":        "Log på for",
		"act_as_self":          "Mig selv",
		"attempts_left":        "Forsøg tilbage",
		"back":                 "Tilbage til tjenesten",
		"error_title":          "Der opstod en fejl",
		"failed":               "Login blev afbrudt",
		"lang_switch":          "English",
		"other_lang":           "en",
		"cookies":              "Login kræver cookies.",
		"notice_renewal_due":   "Dit NemID udløber inden for 60 dage. Forny det under Selvbetjening (kræver en nøgle fra dit nøglekort) eller hos borgerservice. Et udløbet NemID kan ikke fornyes på nettet.",
		"notice_new_card_sent": "Vi har sendt dig et nyt nøglekort. Når du bruger den første nøgle fra det, bliver det gamle kort ugyldigt.",
		"logout_title":         "Log af NemID",
		"logout_text":          "Vil du logge af NemID? Du skal logge på igen næste gang.",
		"logout":               "Log af",
		"logged_out_title":     "Du er logget af NemID",
		"logged_out_text":      "Du er nu logget af NemID. Luk browseren, hvis du har brugt en computer, som andre også bruger.",
		// the key app (nøgleapp)
		"keyapp_title":    "Godkend med nøgleappen",
		"keyapp_open":     "Åbn nøgleappen på din telefon.",
		"keyapp_check_rp": "Tjek, at anmodningen gælder",
		"keyapp_choose":   "og vælg denne kode:",
		"keyapp_code":     "Kode",
		"keyapp_waiting":  "Når du har godkendt i appen, går siden videre af sig selv – eller tryk på Tjek igen.",
		"keyapp_check":    "Tjek igen",
		"keyapp_resend":   "Send en ny anmodning",
		"keyapp_use_card": "Brug nøglekort",
		"use_codecard":    "Brug nøglekort i stedet",
		"use_keyapp":      "Brug nøgleappen i stedet",
		// error codes
		"err_invalid_credentials": "Forkert bruger-id eller adgangskode.",
		"err_wrong_key":           "Forkert nøgle. Indtast nøglen ud for nøglenummeret.",
		"err_used_key":            "Nøglen er allerede brugt.",
		"err_locked":              "Dit NemID er spærret efter for mange forkerte forsøg. Kontakt NemID-support eller borgerservice.",
		"err_blocked":             "Dit NemID er spærret. Kontakt NemID-support.",
		// a block names its reason's category (flows.blockedError)
		"err_wrong_front_end":    "Dette login blev ikke startet af en tjeneste, der bruger OpenID Connect. Gå tilbage til, hvor du startede det.",
		"err_blocked_misuse":     "Dit NemID er spærret, fordi der er mistanke om misbrug. Kontakt NemID-support for at få det ophævet.",
		"err_blocked_lost_card":  "Dit NemID er spærret, fordi dit nøglekort er meldt bortkommet. Kontakt NemID-support eller borgerservice for et nyt kort og for at få spærringen ophævet.",
		"err_blocked_operator":   "Dit NemID er spærret af NemID-support. Kontakt NemID-support eller borgerservice for at få det ophævet.",
		"err_expired":            "Dit NemID er udløbet{date}. Et udløbet NemID kan ikke fornyes på nettet: forny det hos borgerservice i din kommune, i din bank, hvis banken har udstedt dit NemID, eller på en dansk ambassade, hvis du bor i udlandet. Medbring billedlegitimation (pas eller kørekort).",
		"err_flow_expired":       "Dette login findes ikke eller er udløbet. Start forfra hos tjenesten.",
		"err_invalid_request":    "Udfyld feltet korrekt. En nøgle er 6 cifre.",
		"err_invalid_password":   "Adgangskoden opfylder ikke reglerne.",
		"err_wrong_step":         "Siden er forældet. Genindlæs siden.",
		"err_wrong_browser":      "Dette login blev startet i en anden browser.",
		"err_conflict":           "Login blev ændret i et andet vindue. Genindlæs siden.",
		"err_csrf":               "Formularen er udløbet. Genindlæs siden og prøv igen.",
		"err_unavailable":        "NemID er midlertidigt utilgængeligt. Prøv igen om lidt.",
		"err_no_keys_left":       "Dit nøglekort er brugt op. Selvbetjening kræver en nøgle, så få et nyt kort hos borgerservice eller NemID-support, eller log på med nøgleappen og bestil et under Selvbetjening.",
		"err_card_retired":       "Dette nøglekort er erstattet af dit nye kort; brug det nye.",
		"err_card_blocked":       "Dette nøglekort er spærret, fordi det er meldt bortkommet.",
		"card_other":             "Brug et andet nøglekort:",
		"card_switch":            "Brug kort",
		"err_login_required":     "Du skal logge på.",
		"err_internal":           "Der opstod en uventet fejl. Prøv igen.",
		"err_too_many_attempts":  "For mange forkerte svar i dette login. Start forfra hos tjenesten.",
		"err_throttled":          "For mange mislykkede forsøg fra dit netværk. Prøv igen om lidt.",
		"err_unknown_ward":       "Du kan ikke logge på for denne person her.",
		"err_not_available":      "Denne funktion er ikke tilgængelig.",
		"err_not_found":          "Siden findes ikke.",
		"err_method_not_allowed": "Siden kan ikke bruges på denne måde.",
		"err_oces_required":      "Denne tjeneste kræver den offentlige digitale signatur (OCES), og dit NemID er kun til netbank.",
		"err_keyapp_denied":      "Login blev afvist i nøgleappen.",
		"err_keyapp_timeout":     "Anmodningen i nøgleappen er udløbet. Send en ny anmodning, eller brug dit nøglekort.",
		"err_keyapp_wrong_code":  "Koden, du valgte i nøgleappen, var ikke den, der står her, så anmodningen blev stoppet. Send en ny anmodning, eller brug dit nøglekort.",
		"err_no_device":          "Du har ingen aktiv nøgleapp. Brug dit nøglekort.",
		"err_too_many_requests":  "Dette login har sendt så mange anmodninger til nøgleappen, som det må. Brug dit nøglekort, eller start forfra hos tjenesten.",
		"oces_help_title":        "Sådan får du den offentlige digitale signatur",
		"oces_help":              "Få OCES knyttet til dit NemID hos borgerservice i din kommune eller i din netbank. Medbring billedlegitimation (pas eller kørekort). Log derefter på igen.",

		// SAML (idp/saml); in English the message itself is shown.
		"err_wrong_front_end_saml":     "Dette login blev ikke startet af en tjeneste, der bruger SAML. Gå tilbage til, hvor du startede det.",
		"err_saml_invalid_request":     "Loginforespørgslen fra tjenesten kunne ikke godtages.",
		"err_unknown_service_provider": "Tjenesten, der sendte dig hertil, er ikke registreret hos NemID.",
		"err_saml_invalid_signature":   "Loginforespørgslen er ikke signeret af tjenesten, der sendte den.",
		"err_unknown_acs":              "Tjenesten bad om svar på en adresse, den ikke har registreret.",
		"err_saml_request_expired":     "Loginforespørgslen er udløbet eller dateret i fremtiden. Gå tilbage til tjenesten, og prøv igen.",
		"err_saml_answered":            "Dette login er allerede besvaret. Gå tilbage til tjenesten.",
	},
	langEN: {
		"title":                "Log on with NemID",
		"for":                  "You are logging on to",
		"username":             "User ID",
		"username_hint":        "NemID number or CPR number",
		"password":             "Password",
		"next":                 "Next",
		"login":                "Log on",
		"codecard_intro":       "Find the key beside this key number on your code card",
		"card":                 "Code card",
		"key_number":           "Key number",
		"key":                  "Key",
		"new_password":         "Choose your own password",
		"new_password_why":     "You logged on with a temporary password. Now choose your own.",
		"rules":                "4 digits (not all alike, not a run, not from your CPR number) or 6–40 characters with letters and digits.",
		"save":                 "Save and continue",
		"act_as_title":         "Whom are you logging on for?",
		"act_as_intro":         "You are a guardian. Choose whether you log on for yourself or for someone in your care.",
		"act_as_legend":        "Log on for",
		"act_as_self":          "Myself",
		"attempts_left":        "Attempts left",
		"back":                 "Back to the service",
		"error_title":          "Something went wrong",
		"failed":               "The login was stopped",
		"lang_switch":          "Dansk",
		"other_lang":           "da",
		"cookies":              "Logging on needs cookies.",
		"notice_renewal_due":   "Your NemID expires within 60 days. Renew it under Self-service (it asks a key from your code card) or at borgerservice. An expired NemID cannot be renewed online.",
		"notice_new_card_sent": "We have sent you a new code card. Once you use its first key, the old card stops working.",
		"logout_title":         "Log off NemID",
		"logout_text":          "Do you want to log off NemID? You will have to log on again next time.",
		"logout":               "Log off",
		"logged_out_title":     "You are logged off NemID",
		"logged_out_text":      "You are now logged off NemID. Close the browser if you used a computer that others use too.",
		// the key app
		"keyapp_title":    "Approve with the key app",
		"keyapp_open":     "Open the key app on your phone.",
		"keyapp_check_rp": "Check that the request is for",
		"keyapp_choose":   "and choose this code:",
		"keyapp_code":     "Code",
		"keyapp_waiting":  "Once you approve in the app, this page moves on by itself – or press Check again.",
		"keyapp_check":    "Check again",
		"keyapp_resend":   "Send a new request",
		"keyapp_use_card": "Use code card",
		"use_codecard":    "Use code card instead",
		"use_keyapp":      "Use the key app instead",
		// key-app errors
		"err_keyapp_denied":     "The login was denied in the key app.",
		"err_keyapp_timeout":    "The request in the key app ran out. Send a new request, or use your code card.",
		"err_keyapp_wrong_code": "The code chosen in the key app was not the one shown here, so the request was stopped. Send a new request, or use your code card.",
		"err_no_device":         "You have no active key app. Use your code card.",
		"err_too_many_requests": "This login has sent as many key-app requests as it may. Use your code card, or start again from the service you came from.",
		// an expired NemID ({date}: " on <its last valid day>")
		"err_expired": "Your NemID expired{date}. An expired NemID cannot be renewed online: renew it at borgerservice in your municipality, at your bank if your bank issued your NemID, or at a Danish embassy if you live abroad. Bring photo ID (passport or driving licence).",
		// cards
		"err_no_keys_left": "Your code card is used up. Self-service needs a key, so get a new card from borgerservice or NemID support, or log on with the key app and order one under Self-service.",
		"err_card_retired": "This code card has been replaced by your new card; use the new one.",
		"err_card_blocked": "This code card is blocked because it was reported lost.",
		"card_other":       "Use another code card:",
		"card_switch":      "Use card",
		// the OCES gate (oces_required)
		"err_oces_required": "This service requires the public digital signature (OCES), and your NemID is for online banking only.",
		"oces_help_title":   "How to get the public digital signature",
		"oces_help":         "Have OCES attached to your NemID at borgerservice (your municipality's citizen service) or in your netbank. Bring photo ID (passport or driving licence). Then log in again.",
	},
}

// t looks a text up, falling back to Danish, then to the key itself.
func t(lang, key string) string {
	if s, ok := texts[lang][key]; ok {
		return s
	}
	if s, ok := texts[langDA][key]; ok && lang == langDA {
		return s
	}
	return ""
}

// langCookie remembers an explicit choice of language.
const langCookie = "nemidp_lang"

// chooseLang decides the language of a page (DESIGN.md §5): an explicit choice (?lang=, then
// the nemidp_lang cookie that remembers it), else the relying party's ui_locales (locales, in
// its order of preference), else the browser's Accept-Language (English when it prefers en
// over da, by q-value; regional tags such as en-GB or da-DK count as their language), else
// Danish — also when the browser names neither.
func chooseLang(r *http.Request, locales []string) string {
	if l := r.URL.Query().Get("lang"); l == langDA || l == langEN {
		return l
	}
	if c, err := r.Cookie(langCookie); err == nil && (c.Value == langDA || c.Value == langEN) {
		return c.Value
	}
	for _, l := range locales {
		if tag, err := language.Parse(strings.TrimSpace(l)); err == nil {
			if lang := ours(tag); lang != "" {
				return lang
			}
		}
	}
	for _, tag := range acceptLanguage(r.Header.Get("Accept-Language")) {
		if lang := ours(tag); lang != "" {
			return lang
		}
	}
	return langDA
}

// ours names the page language a tag asks for: "da", "en", or "" for any other language.
func ours(tag language.Tag) string {
	base, conf := tag.Base()
	if conf != language.Exact {
		return "" // a guess (und-DK, *) is no preference
	}
	switch base.String() {
	case langDA:
		return langDA
	case langEN:
		return langEN
	}
	return ""
}

// acceptLanguage returns the tags of an Accept-Language header, most preferred first (q=0
// left out). A header with a malformed entry still counts with its well-formed ones.
func acceptLanguage(h string) []language.Tag {
	if h == "" {
		return nil
	}
	if tags, _, err := language.ParseAcceptLanguage(h); err == nil {
		return tags
	}
	type pref struct {
		tag language.Tag
		q   float32
	}
	var prefs []pref
	for entry := range strings.SplitSeq(h, ",") {
		tags, qs, err := language.ParseAcceptLanguage(entry)
		if err == nil && len(tags) == 1 {
			prefs = append(prefs, pref{tags[0], qs[0]})
		}
	}
	slices.SortStableFunc(prefs, func(a, b pref) int { return cmp.Compare(b.q, a.q) })
	tags := make([]language.Tag, len(prefs))
	for i, p := range prefs {
		tags[i] = p.tag
	}
	return tags
}

// requestLocales reads a ui_locales parameter (space-separated, OpenID Connect Core §3.1.2.1)
// from the request's form if it was parsed, else from its query.
func requestLocales(r *http.Request) []string {
	v := r.URL.Query().Get("ui_locales")
	if r.Form != nil {
		v = r.Form.Get("ui_locales")
	}
	return strings.Fields(v)
}
