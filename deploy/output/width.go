package output

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// cutToWidth cuts a line that would take more than width terminal columns
// to width, its last column an ellipsis, so a long line does not wrap and
// push the run off the screen. ANSI escape sequences (the formats' colours,
// or a command's own) take no room and are kept; when a cut line had any,
// it ends with a reset so a colour does not run on. width <= 0 keeps every
// line whole.
func cutToWidth(s string, width int) string {
	if width <= 0 || displayWidth(s) <= width {
		return s
	}
	var b strings.Builder
	col, escapes := 0, false
	for i := 0; i < len(s); {
		if n := escapeLen(s[i:]); n > 0 {
			b.WriteString(s[i : i+n])
			i += n
			escapes = true
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		w := runeWidth(r, col)
		if col+w > width-1 {
			break
		}
		b.WriteString(s[i : i+size])
		col += w
		i += size
	}
	b.WriteString("…")
	if escapes {
		b.WriteString(ansiReset)
	}
	return b.String()
}

// displayWidth is how many terminal columns s takes.
func displayWidth(s string) int {
	col := 0
	for i := 0; i < len(s); {
		if n := escapeLen(s[i:]); n > 0 {
			i += n
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		col += runeWidth(r, col)
		i += size
	}
	return col
}

// escapeLen is the length of the ANSI CSI sequence (ESC [ … final byte) s
// starts with, or 0.
func escapeLen(s string) int {
	if len(s) < 2 || s[0] != '\x1b' || s[1] != '[' {
		return 0
	}
	for i := 2; i < len(s); i++ {
		if c := s[i]; c >= 0x40 && c <= 0x7e {
			return i + 1
		}
	}
	return 0
}

// runeWidth is the columns r takes at column col: a tab reaches the next
// multiple of 8, control and combining characters take none, East Asian
// wide characters and emoji take two, the rest one.
func runeWidth(r rune, col int) int {
	switch {
	case r == '\t':
		return 8 - col%8
	case r < 0x20 || r == 0x7f, unicode.In(r, unicode.Mn, unicode.Me, unicode.Cf):
		return 0
	case isWide(r):
		return 2
	}
	return 1
}

// wideRanges are the blocks terminals draw two columns wide: Hangul Jamo,
// CJK, Hangul syllables, compatibility and full-width forms, emoji.
var wideRanges = [][2]rune{
	{0x1100, 0x115f}, {0x2e80, 0x303e}, {0x3041, 0x33ff}, {0x3400, 0x4dbf},
	{0x4e00, 0x9fff}, {0xa000, 0xa4cf}, {0xac00, 0xd7a3}, {0xf900, 0xfaff},
	{0xfe30, 0xfe4f}, {0xff00, 0xff60}, {0xffe0, 0xffe6}, {0x1f300, 0x1f64f},
	{0x1f900, 0x1f9ff}, {0x20000, 0x3fffd},
}

func isWide(r rune) bool {
	for _, w := range wideRanges {
		if r >= w[0] && r <= w[1] {
			return true
		}
	}
	return false
}
