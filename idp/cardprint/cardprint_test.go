package cardprint

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/nemidp/nemidp/keys/codecard"
)

// node is an element of the rendered page. The template writes polyglot markup (void
// elements closed with "/>"), so a strict XML parse checks that the page is well formed
// without an HTML parser among the dependencies.
type node struct {
	name     string
	attrs    map[string]string
	children []*node
	text     strings.Builder // all text below, in document order
	parent   *node
}

func parse(t *testing.T, doc string) *node {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(doc))
	d.Strict = true
	root := &node{name: "#document"}
	cur := root
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("page does not parse: %v\n%s", err, doc)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			n := &node{name: tok.Name.Local, attrs: map[string]string{}, parent: cur}
			for _, a := range tok.Attr {
				n.attrs[a.Name.Local] = a.Value
			}
			cur.children = append(cur.children, n)
			cur = n
		case xml.EndElement:
			cur = cur.parent
		case xml.CharData:
			for n := cur; n != nil; n = n.parent {
				n.text.Write(tok)
			}
		}
	}
	if cur != root {
		t.Fatalf("page ends inside <%s>", cur.name)
	}
	return root
}

func (n *node) hasClass(c string) bool {
	return n.attrs != nil && strings.Contains(" "+n.attrs["class"]+" ", " "+c+" ")
}

// all returns the elements below n, in document order, that match.
func (n *node) all(match func(*node) bool) []*node {
	var out []*node
	for _, c := range n.children {
		if match(c) {
			out = append(out, c)
		}
		out = append(out, c.all(match)...)
	}
	return out
}

func (n *node) within(match func(*node) bool) bool {
	for p := n.parent; p != nil; p = p.parent {
		if match(p) {
			return true
		}
	}
	return false
}

func named(name string) func(*node) bool { return func(n *node) bool { return n.name == name } }
func class(c string) func(*node) bool    { return func(n *node) bool { return n.hasClass(c) } }

func render(t *testing.T, c codecard.Card, lang string) (string, *node) {
	t.Helper()
	var b bytes.Buffer
	if err := Render(&b, c, lang); err != nil {
		t.Fatal(err)
	}
	return b.String(), parse(t, b.String())
}

func testCard(n int) codecard.Card {
	c := codecard.Card{Serial: "G123456789"}
	for i := range n {
		// Numbers and keys that cannot be mistaken for one another or for their neighbours.
		c.Keys = append(c.Keys, codecard.Key{Number: fmt.Sprintf("%04d", 3*i+7), Key: fmt.Sprintf("%06d", 900000-7*i)})
	}
	return c
}

// pairs reads the cards' key pairs in document order, side by side, and checks that each pair
// is one number beside one key, on a card.
func pairs(t *testing.T, root *node) (sides [][]codecard.Key) {
	t.Helper()
	for _, card := range root.all(class("card")) {
		var keys []codecard.Key
		for _, p := range card.all(class("pair")) {
			if len(p.children) != 2 || p.children[0].name != "dt" || p.children[1].name != "dd" {
				t.Fatalf("a pair is not <dt>number</dt><dd>key</dd>: %+v", p.children)
			}
			keys = append(keys, codecard.Key{Number: p.children[0].text.String(), Key: p.children[1].text.String()})
		}
		sides = append(sides, keys)
	}
	return sides
}

// TestFullCard: a generated card of 148 keys prints on a front and a back of 74 pairs each,
// every key number beside its own key in the card's order, the serial on both sides.
func TestFullCard(t *testing.T) {
	t.Parallel()
	c, err := codecard.Generate()
	if err != nil {
		t.Fatal(err)
	}
	_, root := render(t, c, LangDA)
	sides := pairs(t, root)
	if len(sides) != 2 || len(sides[0]) != 74 || len(sides[1]) != 74 {
		t.Fatalf("148 keys printed as %d sides (%v)", len(sides), sideLens(sides))
	}
	got := append(append([]codecard.Key{}, sides[0]...), sides[1]...)
	for i, k := range c.Keys {
		if got[i] != k {
			t.Fatalf("pair %d printed as %+v, want %+v", i, got[i], k)
		}
	}
	for i, card := range root.all(class("card")) {
		serials := card.all(class("serial"))
		if len(serials) != 1 || !strings.Contains(serials[0].text.String(), c.Serial) {
			t.Errorf("side %d lacks the serial %s on the card", i+1, c.Serial)
		}
	}
	labels := root.all(class("side-label"))
	if len(labels) != 2 || labels[0].text.String() != "Forside" || labels[1].text.String() != "Bagside" {
		t.Errorf("side labels: %v", textsOf(labels))
	}
}

// TestSides: any number of keys is dealt over as few sides as hold them, none over the
// layout's capacity, none lost, in order; an empty card still prints its serial.
func TestSides(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ keys, sides int }{
		{0, 1}, {1, 1}, {3, 1}, {KeysPerSide, 1}, {KeysPerSide + 1, 2}, {codecard.KeysPerCard, 2},
		{2 * KeysPerSide, 2}, {2*KeysPerSide + 1, 3},
	} {
		t.Run(fmt.Sprint(tc.keys), func(t *testing.T) {
			t.Parallel()
			c := testCard(tc.keys)
			_, root := render(t, c, LangEN)
			sides := pairs(t, root)
			if len(sides) != tc.sides {
				t.Fatalf("%d keys: %d sides, want %d", tc.keys, len(sides), tc.sides)
			}
			var got []codecard.Key
			for _, s := range sides {
				if len(s) > KeysPerSide {
					t.Fatalf("a side holds %d pairs, over %d", len(s), KeysPerSide)
				}
				got = append(got, s...)
			}
			if len(got) != len(c.Keys) {
				t.Fatalf("%d keys printed, want %d", len(got), len(c.Keys))
			}
			for i := range got {
				if got[i] != c.Keys[i] {
					t.Fatalf("pair %d printed as %+v, want %+v", i, got[i], c.Keys[i])
				}
			}
			if n := len(root.all(class("serial"))); n != tc.sides {
				t.Fatalf("serial on %d of %d sides", n, tc.sides)
			}
			if tc.sides != 2 {
				labels := textsOf(root.all(class("side-label")))
				if labels[0] != "Side 1" {
					t.Errorf("side labels of a %d-side card: %v", tc.sides, labels)
				}
			}
		})
	}
}

func sideLens(sides [][]codecard.Key) []int {
	var n []int
	for _, s := range sides {
		n = append(n, len(s))
	}
	return n
}

func textsOf(ns []*node) []string {
	var s []string
	for _, n := range ns {
		s = append(s, n.text.String())
	}
	return s
}

// TestLanguages: Danish and English texts, the lang attribute, and Danish for anything else.
func TestLanguages(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		lang, want, title, use, back string
	}{
		{LangDA, "da", "Nøglekort", "Hver nøgle kan kun bruges én gang", "Bagside"},
		{LangEN, "en", "Code card", "Each key can be used only once", "Back"},
		{"", "da", "Nøglekort", "Hver nøgle kan kun bruges én gang", "Bagside"},
		{"de", "da", "Nøglekort", "Hver nøgle kan kun bruges én gang", "Bagside"},
		{"EN", "da", "Nøglekort", "Hver nøgle kan kun bruges én gang", "Bagside"},
	} {
		t.Run(tc.lang, func(t *testing.T) {
			t.Parallel()
			c := testCard(codecard.KeysPerCard)
			_, root := render(t, c, tc.lang)
			html := root.all(named("html"))
			if len(html) != 1 || html[0].attrs["lang"] != tc.want {
				t.Fatalf("lang %q: <html lang> is not %q", tc.lang, tc.want)
			}
			if title := root.all(named("title")); len(title) != 1 || title[0].text.String() != tc.title+" "+c.Serial {
				t.Errorf("title: %v", textsOf(title))
			}
			intro := root.all(class("intro"))
			if len(intro) != 1 || !strings.Contains(intro[0].text.String(), tc.use) || intro[0].within(class("card")) {
				t.Errorf("the instruction %q is not above, outside the card", tc.use)
			}
			if labels := root.all(class("side-label")); labels[1].text.String() != tc.back {
				t.Errorf("back side labelled %q, want %q", labels[1].text.String(), tc.back)
			}
			if heads := root.all(class("card-title")); heads[0].text.String() != tc.title {
				t.Errorf("card says %q, want %q", heads[0].text.String(), tc.title)
			}
		})
	}
	// The other language's words must not leak into a page (a text table filled half).
	da, _ := render(t, testCard(3), LangDA)
	en, _ := render(t, testCard(3), LangEN)
	if strings.Contains(da, "Code card") || strings.Contains(en, "Nøglekort") || strings.Contains(en, "nøgle") {
		t.Error("a page mixes the languages")
	}
}

// TestCSPClean: nothing the server's policy (style-src 'self'; script-src 'self') blocks: no
// style attribute, no <style> or <script>, no event handler, only same-origin resources.
func TestCSPClean(t *testing.T) {
	t.Parallel()
	for _, lang := range []string{LangDA, LangEN} {
		doc, root := render(t, testCard(codecard.KeysPerCard), lang)
		for _, n := range root.all(func(*node) bool { return true }) {
			if n.name == "style" || n.name == "script" {
				t.Errorf("a <%s> element", n.name)
			}
			for a, v := range n.attrs {
				if a == "style" || strings.HasPrefix(a, "on") {
					t.Errorf("<%s %s=%q>", n.name, a, v)
				}
				if (a == "href" || a == "src") && !strings.HasPrefix(v, "/") {
					t.Errorf("<%s %s=%q> is not same-origin", n.name, a, v)
				}
			}
		}
		// Belt and braces for what a parse could miss (a tag inside text is text).
		for _, bad := range []string{"style=", "<style", "<script", "javascript:"} {
			if strings.Contains(strings.ToLower(doc), bad) {
				t.Errorf("page contains %q", bad)
			}
		}
		links := root.all(named("link"))
		if len(links) != 1 || links[0].attrs["rel"] != "stylesheet" || links[0].attrs["href"] != Stylesheet {
			t.Errorf("stylesheet link: %+v", links)
		}
		if !strings.HasPrefix(doc, "<!DOCTYPE html>") {
			t.Error("no doctype")
		}
	}
}

// TestHostileSerial: a serial (or note) with markup is printed as text, never as markup.
func TestHostileSerial(t *testing.T) {
	t.Parallel()
	evil := `G1"><script>alert(1)</script><img src=x onerror=alert(2)>&amp;'`
	c := testCard(2)
	c.Serial = evil
	c.Keys[0].Key = `<b>1</b>`
	var b bytes.Buffer
	if err := RenderPage(&b, Page{Card: c, Lang: LangEN, Note: `</p><script>x()</script>`}); err != nil {
		t.Fatal(err)
	}
	doc := b.String()
	root := parse(t, doc)
	if n := len(root.all(func(n *node) bool { return n.name == "script" || n.name == "img" || n.name == "b" })); n != 0 {
		t.Fatalf("%d injected elements", n)
	}
	if strings.Contains(doc, "<script") || strings.Contains(doc, "<img") {
		t.Fatal("markup from the card reached the page")
	}
	serials := root.all(class("serial"))
	if len(serials) != 1 || serials[0].text.String() != "No. "+evil {
		t.Fatalf("serial printed as %v, want it as text", textsOf(serials))
	}
	if s := pairs(t, root); s[0][0].Key != `<b>1</b>` {
		t.Fatalf("key printed as %q", s[0][0].Key)
	}
	if notes := root.all(class("note")); len(notes) != 1 || notes[0].text.String() != `</p><script>x()</script>` || notes[0].within(class("card")) {
		t.Fatalf("note: %v", textsOf(notes))
	}
}

// TestNoteOnlyWhenGiven: Render prints no empty note line.
func TestNoteOnlyWhenGiven(t *testing.T) {
	t.Parallel()
	_, root := render(t, testCard(3), LangDA)
	if n := len(root.all(class("note"))); n != 0 {
		t.Fatalf("%d note lines without a note", n)
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

// TestWriteError: a failing writer is reported, not swallowed.
func TestWriteError(t *testing.T) {
	t.Parallel()
	err := Render(failWriter{}, testCard(3), LangDA)
	if err == nil || !strings.Contains(err.Error(), "disk full") || !strings.Contains(err.Error(), "G123456789") {
		t.Fatalf("Render to a failing writer: %v", err)
	}
}

// TestStylesheet: the CSS the page links is the one idp/web serves, it holds the card's ID-1
// size and the @page rule, it lays out the rows and columns the Go side deals keys into, and it
// styles every class the page uses.
func TestStylesheet(t *testing.T) {
	t.Parallel()
	css, err := os.ReadFile("../web/static/" + strings.TrimPrefix(Stylesheet, "/static/"))
	if err != nil {
		t.Fatalf("the linked stylesheet is not among idp/web's static files: %v", err)
	}
	s := string(css)
	for _, want := range []string{
		"@page", "width: 85.6mm", "height: 53.98mm", "box-sizing: border-box",
		fmt.Sprintf("grid-template-rows: repeat(%d,", RowsPerSide),
		fmt.Sprintf("grid-template-columns: repeat(%d,", ColumnsPerSide),
		"grid-auto-flow: column",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("card.css lacks %q", want)
		}
	}
	if regexp.MustCompile(`url\(|@import|https?:`).MatchString(s) {
		t.Error("card.css loads something; the policy allows only 'self' and the page needs nothing")
	}
	var b bytes.Buffer
	if err := RenderPage(&b, Page{Card: testCard(codecard.KeysPerCard), Note: "n"}); err != nil {
		t.Fatal(err)
	}
	for _, n := range parse(t, b.String()).all(func(n *node) bool { return n.attrs["class"] != "" }) {
		for _, c := range strings.Fields(n.attrs["class"]) {
			if !regexp.MustCompile(`\.` + regexp.QuoteMeta(c) + `[\s{:,.]`).MatchString(s) {
				t.Errorf("class %q has no rule in card.css", c)
			}
		}
	}
}

// TestLang: the request's language for a print endpoint.
func TestLang(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ url, accept, want string }{
		{"/", "", LangDA},
		{"/?lang=en", "", LangEN},
		{"/?lang=da", "en", LangDA},
		{"/?lang=de", "en-GB,en;q=0.8", LangEN},
		{"/", "en-US", LangEN},
		{"/", "da-DK,en;q=0.5", LangDA},
		{"/", "de,en;q=0.5", LangEN},
		{"/", "de,fr", LangDA},
		{"/", "not a ;;; header", LangDA},
	} {
		r := httptest.NewRequest("GET", tc.url, nil)
		if tc.accept != "" {
			r.Header.Set("Accept-Language", tc.accept)
		}
		if got := Lang(r); got != tc.want {
			t.Errorf("Lang(%s, Accept-Language %q) = %q, want %q", tc.url, tc.accept, got, tc.want)
		}
	}
}
