// Package cardprint renders a printed code card ("nøglekort") as an HTML print view: each
// side of the card at ID-1 size (85.60 mm × 53.98 mm, a credit card) when printed at 100 %,
// key number beside key, the serial on every side, and a short instruction outside the card.
//
// The page is clean under the server's Content-Security-Policy (style-src 'self', no inline
// script): it has no style attribute, no <style> or <script> element, and takes its layout
// from the static stylesheet at Stylesheet (idp/web/static/card.css).
package cardprint

import (
	"cmp"
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"net/http"

	"golang.org/x/text/language"

	"github.com/nemidp/nemidp/keys/codecard"
)

// Stylesheet is where the server serves the print view's CSS (idp/web/static/card.css).
const Stylesheet = "/static/card.css"

// Layout of one side of the card. card.css lays the keys out in RowsPerSide rows, column by
// column, so ascending numbers read downwards like a phone book; 5 columns of 15 pairs are
// what fits 85.60 mm × 53.98 mm at a legible size (a 6.5 pt key), hence a full card of
// codecard.KeysPerCard (148) pairs takes a front and a back side.
const (
	ColumnsPerSide = 5
	RowsPerSide    = 15
	KeysPerSide    = ColumnsPerSide * RowsPerSide
)

// Languages of the page; anything else is Danish.
const (
	LangDA = "da"
	LangEN = "en"
)

type texts struct {
	Title, SerialLabel, Use, Safe, Cut string
	Front, Back, Side                  string
}

var i18n = map[string]texts{
	LangDA: {
		Title:       "Nøglekort",
		SerialLabel: "Nr.",
		Use:         "Når du logger på med NemID, bliver du bedt om nøglen til et nøglenummer. Find nummeret på kortet og indtast den sekscifrede nøgle, der står ved siden af. Hver nøgle kan kun bruges én gang.",
		Safe:        "Opbevar kortet sikkert, og giv aldrig en nøgle til andre, heller ikke hvis nogen ringer eller skriver og beder om den. Har du mistet kortet, så spær det med det samme.",
		Cut:         "Udskriv i 100 % størrelse, og klip kortet ud langs den stiplede linje.",
		Front:       "Forside",
		Back:        "Bagside",
		Side:        "Side",
	},
	LangEN: {
		Title:       "Code card",
		SerialLabel: "No.",
		Use:         "When you log in with NemID, you are asked for the key to a key number. Find the number on the card and enter the six-digit key beside it. Each key can be used only once.",
		Safe:        "Keep the card safe and never give a key to anyone, not even if someone calls or writes and asks for it. If you have lost the card, block it at once.",
		Cut:         "Print at 100 % size and cut the card out along the dashed line.",
		Front:       "Front",
		Back:        "Back",
		Side:        "Side",
	},
}

//go:embed card.html
var pageSource string

var page = template.Must(template.New("card").Parse(pageSource))

// Page is what RenderPage prints. Render is RenderPage with no Note.
type Page struct {
	Card codecard.Card
	// Lang is LangDA or LangEN; anything else is Danish.
	Lang string
	// Note is an extra line shown above the card, outside it (the demo's user id).
	Note string
	// StylesheetURL is where the page's stylesheet is fetched ("": Stylesheet, on the page's
	// own server). The operator API's print view names the issuer's public one: the operator
	// listener may be a separate one that serves no /static/.
	StylesheetURL string
}

type side struct {
	Label     string
	Index, Of int
	Keys      []codecard.Key
}

type view struct {
	Lang, Serial, Note, Stylesheet string
	T                              texts
	Sides                          []side
}

// Render writes the print view of c as a complete HTML document in lang (LangDA or LangEN,
// anything else Danish). The caller sets the headers: Content-Type "text/html; charset=utf-8"
// and, as the page holds every key, Cache-Control "no-store".
func Render(w io.Writer, c codecard.Card, lang string) error {
	return RenderPage(w, Page{Card: c, Lang: lang})
}

// RenderPage writes the print view of p.Card with p.Note above it.
func RenderPage(w io.Writer, p Page) error {
	lang := p.Lang
	if lang != LangEN {
		lang = LangDA
	}
	t := i18n[lang]
	v := view{Lang: lang, Serial: p.Card.Serial, Note: p.Note, Stylesheet: cmp.Or(p.StylesheetURL, Stylesheet), T: t, Sides: split(p.Card.Keys)}
	for i := range v.Sides {
		s := &v.Sides[i]
		switch {
		case s.Of == 2 && i == 0:
			s.Label = t.Front
		case s.Of == 2 && i == 1:
			s.Label = t.Back
		default:
			// One side (a short test card) or more than two (a card longer than the system
			// issues): no front/back to name.
			s.Label = fmt.Sprintf("%s %d", t.Side, s.Index)
		}
	}
	if err := page.Execute(w, v); err != nil {
		return fmt.Errorf("cardprint: render card %q: %w", p.Card.Serial, err)
	}
	return nil
}

// split deals keys over as few sides as hold them, evenly (148 → 74 + 74), in order: the front
// holds the lowest numbers. A card with no keys still gets one (empty) side with its serial.
func split(keys []codecard.Key) []side {
	n := max(1, (len(keys)+KeysPerSide-1)/KeysPerSide)
	per := (len(keys) + n - 1) / n
	sides := make([]side, n)
	for i := range sides {
		lo, hi := min(i*per, len(keys)), min((i+1)*per, len(keys))
		sides[i] = side{Index: i + 1, Of: n, Keys: keys[lo:hi]}
	}
	return sides
}

var langs = language.NewMatcher([]language.Tag{language.Danish, language.English})

// Lang picks the page language for a print request: ?lang=da|en, else the first of Danish and
// English the Accept-Language header asks for, else Danish.
func Lang(r *http.Request) string {
	if l := r.URL.Query().Get("lang"); l == LangDA || l == LangEN {
		return l
	}
	tags, _, err := language.ParseAcceptLanguage(r.Header.Get("Accept-Language"))
	if err != nil || len(tags) == 0 {
		return LangDA
	}
	if _, i, conf := langs.Match(tags...); i == 1 && conf != language.No {
		return LangEN
	}
	return LangDA
}
