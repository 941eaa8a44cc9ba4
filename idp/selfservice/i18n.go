package selfservice

import (
	"net/http"

	"golang.org/x/text/language"
)

// Languages: Danish is the default, English on request.
const (
	langDA = "da"
	langEN = "en"
)

// langCookie is the login pages' cookie that remembers an explicit choice (idp/web): one
// choice for both.
const langCookie = "nemidp_lang"

// chooseLang decides a page's language as the login pages do (DESIGN.md §5): ?lang=
// (remembered in the cookie), the cookie, the browser's Accept-Language (English when it
// prefers en over da), else Danish.
func (h *Handler) chooseLang(w http.ResponseWriter, r *http.Request) string {
	if l := r.URL.Query().Get("lang"); l == langDA || l == langEN {
		http.SetCookie(w, &http.Cookie{Name: langCookie, Value: l, Path: "/", MaxAge: 365 * 86400,
			Secure: h.Secure, SameSite: http.SameSiteLaxMode})
		return l
	}
	if c, err := r.Cookie(langCookie); err == nil && (c.Value == langDA || c.Value == langEN) {
		return c.Value
	}
	if tags, _, err := language.ParseAcceptLanguage(r.Header.Get("Accept-Language")); err == nil {
		for _, tag := range tags {
			if base, conf := tag.Base(); conf == language.Exact {
				switch base.String() {
				case langDA:
					return langDA
				case langEN:
					return langEN
				}
			}
		}
	}
	return langDA
}

// t looks a text up ("" when there is none).
func t(lang, key string) string { return texts[lang][key] }

var texts = map[string]map[string]string{
	langDA: {
		"title":                  "NemID Selvbetjening",
		"lang_switch":            "English",
		"other_lang":             "en",
		"logout":                 "Log af",
		"back":                   "Tilbage til oversigten",
		"nemid":                  "Dit NemID",
		"name":                   "Navn",
		"user_id":                "NemID-nummer",
		"status":                 "Status",
		"expires":                "Udløber",
		"status_active":          "Aktivt",
		"status_blocked":         "Spærret",
		"status_expired":         "Udløbet",
		"renewal_due":            "Dit NemID udløber snart. Forny det nu.",
		"renew":                  "Forny NemID",
		"block":                  "Spær NemID",
		"cards":                  "Nøglekort",
		"card":                   "Kort",
		"keys_left":              "Nøgler tilbage",
		"card_active":            "I brug",
		"card_sent":              "Sendt til dig",
		"card_retired":           "Udskiftet",
		"card_blocked":           "Spærret",
		"no_cards":               "Du har ingen nøglekort.",
		"cards_unavailable":      "Oplysninger om nøglekort er ikke tilgængelige lige nu.",
		"order_extra":            "Bestil et ekstra nøglekort",
		"report_lost":            "Mit nøglekort er bortkommet",
		"lost_title":             "Bortkommet nøglekort",
		"lost_text":              "Dit nøglekort i brug bliver spærret med det samme, og vi sender dig et nyt med posten. Indtil det er fremme, kan du logge på med nøgleappen, hvis du har den.",
		"lost_confirm":           "Spær kortet og send et nyt",
		"devices":                "Nøgleapp",
		"device":                 "Enhed",
		"added":                  "Tilføjet",
		"no_devices":             "Du har ingen aktive enheder med nøgleappen.",
		"remove":                 "Fjern",
		"address":                "Alternativ adresse",
		"address_none":           "Breve og nøglekort sendes til din folkeregisteradresse.",
		"address_used":           "Breve og nøglekort sendes til:",
		"address_change":         "Skift adresse",
		"address_intro":          "Skriv den adresse, breve og nøglekort skal sendes til i stedet for din folkeregisteradresse (højst 5 linjer).",
		"address_clear":          "Brug folkeregisteradressen",
		"save":                   "Gem",
		"password":               "Adgangskode",
		"password_change":        "Skift adgangskode",
		"current_password":       "Nuværende adgangskode",
		"new_password":           "Ny adgangskode",
		"repeat_password":        "Gentag ny adgangskode",
		"rules":                  "4 cifre (ikke ens, ikke fortløbende, ikke fra dit CPR-nummer) eller 6–40 tegn med både bogstaver og tal.",
		"block_title":            "Spær dit NemID",
		"block_text":             "Spær dit NemID, hvis du har mistanke om, at andre kender din adgangskode eller har dit nøglekort. Du bliver logget af alle steder med det samme, og ingen kan logge på med dit NemID, før spærringen er ophævet hos borgerservice eller NemID-support.",
		"block_confirm":          "Ja, spær mit NemID",
		"blocked_title":          "Dit NemID er spærret",
		"blocked_text":           "Ingen kan nu logge på med dit NemID, og du er logget af. Kontakt borgerservice eller NemID-support med billedlegitimation for at få spærringen ophævet.",
		"renew_title":            "Forny dit NemID",
		"renew_text":             "Fornyelsen forlænger dit NemID med 3 år. Indtast nøglen fra dit nøglekort ud for nøglenummeret.",
		"key_number":             "Nøglenummer",
		"key":                    "Nøgle",
		"attempts_left":          "Forsøg tilbage",
		"logged_out_title":       "Du er logget af",
		"logged_out_text":        "Du er logget af NemID Selvbetjening og NemID. Luk browseren, hvis du har brugt en computer, som andre også bruger.",
		"login_again":            "Log på igen",
		"error_title":            "Der opstod en fejl",
		"flash_card_ordered":     "Vi har bestilt et nyt nøglekort til dig. Det sendes med posten.",
		"flash_card_replaced":    "Dit bortkomne nøglekort er spærret, og et nyt er på vej med posten.",
		"flash_renewed":          "Dit NemID er fornyet.",
		"flash_device_removed":   "Enheden er fjernet. Den kan ikke længere godkende login.",
		"flash_password_changed": "Din adgangskode er skiftet. Brug den næste gang, du logger på.",
		"flash_address_set":      "Din alternative adresse er gemt.",
		"flash_address_cleared":  "Breve og nøglekort sendes igen til din folkeregisteradresse.",
		// errors
		"err_generic":                         "Det kunne ikke lade sig gøre.",
		"err_not_available":                   "Denne funktion er ikke tilgængelig lige nu. Prøv igen senere, eller kontakt borgerservice.",
		"err_unavailable":                     "NemID er midlertidigt utilgængeligt. Prøv igen om lidt.",
		"err_internal":                        "Der opstod en uventet fejl. Prøv igen.",
		"err_csrf":                            "Formularen er udløbet. Genindlæs siden og prøv igen.",
		"err_not_found":                       "Siden findes ikke.",
		"err_invalid_request":                 "Formularen er ikke udfyldt korrekt.",
		"err_flow_expired":                    "Dette login findes ikke eller er udløbet. Log på igen.",
		"err_wrong_browser":                   "Dette login blev startet i en anden browser.",
		"err_too_many_attempts":               "For mange forkerte svar i dette login. Log på igen.",
		"err_blocked":                         "Dit NemID er spærret. Kontakt borgerservice eller NemID-support.",
		"err_locked":                          "Dit NemID er spærret efter for mange forkerte forsøg. Kontakt borgerservice eller NemID-support.",
		"err_expired":                         "Dit NemID er udløbet. Kontakt borgerservice for at forny det.",
		"err_keyapp_denied":                   "Login blev afvist i nøgleappen.",
		"err_card_limit":                      "Du har allerede så mange ekstra nøglekort, som du kan bestille selv. Kontakt borgerservice, hvis du har brug for flere.",
		"err_wrong_key":                       "Forkert nøgle. Indtast nøglen ud for nøglenummeret.",
		"err_used_key":                        "Nøglen er allerede brugt.",
		"err_invalid_key":                     "En nøgle er 6 cifre.",
		"err_not_due":                         "Dit NemID skal ikke fornyes endnu.",
		"err_no_keys_left":                    "Dit nøglekort har ingen ubrugte nøgler. Bestil et nyt.",
		"err_no_card":                         "Du har intet nøglekort i brug. Bestil et nyt.",
		"err_not_own_device":                  "Enheden er ikke en af dine.",
		"err_no_device":                       "Enheden findes ikke.",
		"err_wrong_password":                  "Forkert nuværende adgangskode.",
		"err_passwords_differ":                "Den nye adgangskode og gentagelsen er ikke ens.",
		"err_conflict":                        "Din adgangskode blev ændret i mellemtiden. Genindlæs siden.",
		"err_password_too_short":              "Den nye adgangskode er for kort: 4 cifre eller mindst 6 tegn.",
		"err_password_too_long":               "Den nye adgangskode er for lang: højst 40 tegn.",
		"err_password_needs_letter_and_digit": "Den nye adgangskode skal have både bogstaver og tal.",
		"err_password_pin_all_alike":          "De 4 cifre må ikke være ens.",
		"err_password_pin_run":                "De 4 cifre må ikke være fortløbende.",
		"err_password_pin_in_cpr":             "De 4 cifre må ikke stå i dit CPR-nummer.",
		"err_password_invalid_characters":     "Den nye adgangskode har tegn, der ikke kan bruges.",
		"err_address_too_long":                "Adressen er for lang: højst 200 tegn.",
		"err_address_too_many_lines":          "Adressen har for mange linjer: højst 5.",
		"err_address_invalid_characters":      "Adressen har tegn, der ikke kan bruges.",
	},
	langEN: {
		"title":                  "NemID Self-service",
		"lang_switch":            "Dansk",
		"other_lang":             "da",
		"logout":                 "Log off",
		"back":                   "Back to the overview",
		"nemid":                  "Your NemID",
		"name":                   "Name",
		"user_id":                "NemID number",
		"status":                 "Status",
		"expires":                "Expires",
		"status_active":          "Active",
		"status_blocked":         "Blocked",
		"status_expired":         "Expired",
		"renewal_due":            "Your NemID expires soon. Renew it now.",
		"renew":                  "Renew NemID",
		"block":                  "Block NemID",
		"cards":                  "Code cards",
		"card":                   "Card",
		"keys_left":              "Keys left",
		"card_active":            "In use",
		"card_sent":              "Sent to you",
		"card_retired":           "Replaced",
		"card_blocked":           "Blocked",
		"no_cards":               "You have no code cards.",
		"cards_unavailable":      "Code card details are not available right now.",
		"order_extra":            "Order an extra code card",
		"report_lost":            "I have lost my code card",
		"lost_title":             "Lost code card",
		"lost_text":              "Your code card in use is blocked at once, and we send you a new one by post. Until it arrives you can log on with the key app, if you have it.",
		"lost_confirm":           "Block the card and send a new one",
		"devices":                "Key app",
		"device":                 "Device",
		"added":                  "Added",
		"no_devices":             "You have no active key-app devices.",
		"remove":                 "Remove",
		"address":                "Alternative address",
		"address_none":           "Letters and code cards go to your address in the CPR register.",
		"address_used":           "Letters and code cards go to:",
		"address_change":         "Change address",
		"address_intro":          "Write the address letters and code cards should go to instead of your address in the CPR register (at most 5 lines).",
		"address_clear":          "Use the register address",
		"save":                   "Save",
		"password":               "Password",
		"password_change":        "Change password",
		"current_password":       "Current password",
		"new_password":           "New password",
		"repeat_password":        "Repeat the new password",
		"rules":                  "4 digits (not all alike, not a run, not from your CPR number) or 6–40 characters with letters and digits.",
		"block_title":            "Block your NemID",
		"block_text":             "Block your NemID if you suspect that someone else knows your password or has your code card. You are logged off everywhere at once, and nobody can log on with your NemID until the block is lifted at borgerservice or NemID support.",
		"block_confirm":          "Yes, block my NemID",
		"blocked_title":          "Your NemID is blocked",
		"blocked_text":           "Nobody can log on with your NemID now, and you are logged off. Contact borgerservice or NemID support with photo ID to have the block lifted.",
		"renew_title":            "Renew your NemID",
		"renew_text":             "Renewal extends your NemID by 3 years. Type the key from your code card beside the key number.",
		"key_number":             "Key number",
		"key":                    "Key",
		"attempts_left":          "Attempts left",
		"logged_out_title":       "You are logged off",
		"logged_out_text":        "You are logged off NemID Self-service and NemID. Close the browser if you used a computer that others use too.",
		"login_again":            "Log on again",
		"error_title":            "Something went wrong",
		"flash_card_ordered":     "We have ordered a new code card for you. It is sent by post.",
		"flash_card_replaced":    "Your lost code card is blocked, and a new one is on its way by post.",
		"flash_renewed":          "Your NemID is renewed.",
		"flash_device_removed":   "The device is removed. It can no longer approve logins.",
		"flash_password_changed": "Your password is changed. Use it the next time you log on.",
		"flash_address_set":      "Your alternative address is saved.",
		"flash_address_cleared":  "Letters and code cards go to your register address again.",
		// errors
		"err_generic":                         "That could not be done.",
		"err_not_available":                   "This function is not available right now. Try again later, or contact borgerservice.",
		"err_unavailable":                     "NemID is temporarily unavailable. Please try again shortly.",
		"err_internal":                        "Unexpected error. Please try again.",
		"err_csrf":                            "The form has expired. Reload the page and try again.",
		"err_not_found":                       "There is no such page.",
		"err_invalid_request":                 "The form is not filled in correctly.",
		"err_flow_expired":                    "This login does not exist or has expired. Log on again.",
		"err_wrong_browser":                   "This login was started in another browser.",
		"err_too_many_attempts":               "Too many wrong answers in this login. Log on again.",
		"err_blocked":                         "Your NemID is blocked. Contact borgerservice or NemID support.",
		"err_locked":                          "Your NemID is locked after too many failed attempts. Contact borgerservice or NemID support.",
		"err_expired":                         "Your NemID has expired. Contact borgerservice to renew it.",
		"err_keyapp_denied":                   "The login was denied in the key app.",
		"err_card_limit":                      "You already have as many extra code cards as you can order yourself. Contact borgerservice if you need more.",
		"err_wrong_key":                       "Wrong key. Type the key beside the key number.",
		"err_used_key":                        "That key has already been used.",
		"err_invalid_key":                     "A key is 6 digits.",
		"err_not_due":                         "Your NemID is not due for renewal yet.",
		"err_no_keys_left":                    "Your code card has no unused keys left. Order a new one.",
		"err_no_card":                         "You have no code card in use. Order a new one.",
		"err_not_own_device":                  "That device is not one of yours.",
		"err_no_device":                       "There is no such device.",
		"err_wrong_password":                  "Wrong current password.",
		"err_passwords_differ":                "The new password and its repetition differ.",
		"err_conflict":                        "Your password was changed meanwhile. Reload the page.",
		"err_password_too_short":              "The new password is too short: 4 digits or at least 6 characters.",
		"err_password_too_long":               "The new password is too long: at most 40 characters.",
		"err_password_needs_letter_and_digit": "The new password needs both letters and digits.",
		"err_password_pin_all_alike":          "The 4 digits must not all be alike.",
		"err_password_pin_run":                "The 4 digits must not be a run.",
		"err_password_pin_in_cpr":             "The 4 digits must not appear in your CPR number.",
		"err_password_invalid_characters":     "The new password has characters that cannot be used.",
		"err_address_too_long":                "The address is too long: at most 200 characters.",
		"err_address_too_many_lines":          "The address has too many lines: at most 5.",
		"err_address_invalid_characters":      "The address has characters that cannot be used.",
	},
}
