package web

import (
	"fmt"
	"strings"
	"time"

	"github.com/nemidp/nemidp/flows"
)

// danishMonths are the month names of a Danish date ("30. november 2026").
var danishMonths = [...]string{"januar", "februar", "marts", "april", "maj", "juni", "juli", "august",
	"september", "oktober", "november", "december"}

// fillErrorText fills in what an error's text names: {date} is an expired NemID's last valid
// day (" den 30. november 2026", " on 30 November 2026"), or nothing when the error has none.
func fillErrorText(lang, text string, fe *flows.Error) string {
	if !strings.Contains(text, "{date}") {
		return text
	}
	when := ""
	if d, err := time.Parse(time.DateOnly, fe.ExpiresAt); err == nil {
		when = " on " + d.Format("2 January 2006")
		if lang != langEN {
			when = fmt.Sprintf(" den %d. %s %d", d.Day(), danishMonths[d.Month()-1], d.Year())
		}
	}
	return strings.ReplaceAll(text, "{date}", when)
}
