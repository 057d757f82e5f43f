package output

import (
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"
)

// collect returns a LineWriter and the lines it delivered so far.
func collect() (*LineWriter, *[]string) {
	var lines []string
	return NewLineWriter(func(l string) { lines = append(lines, l) }), &lines
}

func TestLineWriter(t *testing.T) {
	for _, tc := range []struct {
		name   string
		writes []string
		want   []string
	}{
		{"nothing", nil, nil},
		{"empty write", []string{""}, nil},
		{"one line", []string{"a\n"}, []string{"a"}},
		{"several in one write", []string{"a\nb\nc\n"}, []string{"a", "b", "c"}},
		{"empty lines kept", []string{"\n\na\n\n"}, []string{"", "", "a", ""}},
		{"partial across writes", []string{"he", "llo", " world\nnext", " one\n"}, []string{"hello world", "next one"}},
		{"crlf", []string{"a\r\nb\r\n"}, []string{"a", "b"}},
		{"crlf split across writes", []string{"a\r", "\nb\r", "\n"}, []string{"a", "b"}},
		{"lone cr kept", []string{"50%\r100%\n"}, []string{"50%\r100%"}},
		{"only one cr dropped", []string{"a\r\r\n"}, []string{"a\r"}},
		{"unterminated last line", []string{"a\nb"}, []string{"a", "b"}},
		{"unterminated with cr", []string{"a\r"}, []string{"a"}},
		{"lone cr at the end", []string{"a\n\r"}, []string{"a"}},
		{"binary bytes", []string{"\x00\xff\n"}, []string{"\x00\xff"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, lines := collect()
			for _, s := range tc.writes {
				if n, err := w.Write([]byte(s)); n != len(s) || err != nil {
					t.Fatalf("Write = %d, %v", n, err)
				}
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(*lines, tc.want) {
				t.Errorf("lines = %q, want %q", *lines, tc.want)
			}
			w.Flush() // nothing left: no extra line
			if !slices.Equal(*lines, tc.want) {
				t.Errorf("second flush added lines: %q", *lines)
			}
		})
	}
}

func TestLineWriterFlushThenMore(t *testing.T) {
	w, lines := collect()
	io.WriteString(w, "prompt: ")
	if len(*lines) != 0 {
		t.Fatalf("partial line delivered before Flush: %q", *lines)
	}
	w.Flush()
	io.WriteString(w, "answer\n")
	if want := []string{"prompt: ", "answer"}; !slices.Equal(*lines, want) {
		t.Errorf("lines = %q, want %q", *lines, want)
	}
}

func TestLineWriterLongLines(t *testing.T) {
	const max = MaxLineLength
	t.Run("exactly the limit", func(t *testing.T) {
		w, lines := collect()
		io.WriteString(w, strings.Repeat("a", max)+"\n")
		io.WriteString(w, strings.Repeat("b", max)+"\r\n")
		if len(*lines) != 2 || len((*lines)[0]) != max || len((*lines)[1]) != max {
			t.Errorf("got %d lines of lengths %v", len(*lines), lengths(*lines))
		}
	})
	t.Run("split into pieces", func(t *testing.T) {
		w, lines := collect()
		// Written in odd-sized chunks to cross the limit mid-write.
		s := strings.Repeat("x", 2*max+10) + "\nend\n"
		for len(s) > 0 {
			n := min(len(s), 7919)
			io.WriteString(w, s[:n])
			s = s[n:]
		}
		if got := lengths(*lines); !slices.Equal(got, []int{max, max, 10, 3}) {
			t.Errorf("piece lengths = %v", got)
		}
	})
	t.Run("utf8 not cut", func(t *testing.T) {
		w, lines := collect()
		// "€" is 3 bytes; put one across the limit.
		s := strings.Repeat("a", max-1) + "€" + "tail"
		io.WriteString(w, s)
		w.Close()
		if len(*lines) != 2 || (*lines)[0] != strings.Repeat("a", max-1) || (*lines)[1] != "€tail" {
			t.Errorf("piece lengths = %v", lengths(*lines))
		}
		for _, l := range *lines {
			if !utf8.ValidString(l) {
				t.Errorf("piece of %d bytes is not valid UTF-8", len(l))
			}
		}
	})
	t.Run("invalid utf8 still makes progress", func(t *testing.T) {
		w, lines := collect()
		io.WriteString(w, strings.Repeat("\xe2", 3*max))
		w.Close()
		// Each piece ends before a byte that looks like the start of an
		// unfinished sequence, so pieces are a byte short, but all arrive.
		total := 0
		for i, n := range lengths(*lines) {
			if i < len(*lines)-1 && n < max-utf8.UTFMax || n > max {
				t.Errorf("piece of %d bytes", n)
			}
			total += n
		}
		if total != 3*max {
			t.Errorf("%d bytes delivered, want %d", total, 3*max)
		}
	})
}

func lengths(ls []string) []int {
	var n []int
	for _, l := range ls {
		n = append(n, len(l))
	}
	return n
}

// TestLineWriterChunking feeds the same random text in random pieces and
// expects the same lines as a whole-text split.
func TestLineWriterChunking(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	alphabet := []string{"a", "é", "\n", "\r", "\r\n", " ", "€"}
	for range 200 {
		var b strings.Builder
		for range r.IntN(200) {
			b.WriteString(alphabet[r.IntN(len(alphabet))])
		}
		text := b.String()
		// The model: split at "\n", drop one "\r" before each, and keep
		// the unterminated rest unless it is empty (or a lone "\r").
		var want []string
		parts := strings.Split(text, "\n")
		for _, l := range parts[:len(parts)-1] {
			want = append(want, strings.TrimSuffix(l, "\r"))
		}
		if last := strings.TrimSuffix(parts[len(parts)-1], "\r"); last != "" {
			want = append(want, last)
		}
		w, lines := collect()
		for rest := text; rest != ""; {
			n := 1 + r.IntN(min(len(rest), 9))
			io.WriteString(w, rest[:n])
			rest = rest[n:]
		}
		w.Close()
		if !slices.Equal(*lines, want) {
			t.Fatalf("text %q:\n got %q\nwant %q", text, *lines, want)
		}
	}
}

func TestLineWriterConcurrent(t *testing.T) {
	var mu sync.Mutex
	count := 0
	w := NewLineWriter(func(l string) {
		mu.Lock()
		defer mu.Unlock()
		if l != "0123456789" {
			t.Errorf("torn line %q", l)
		}
		count++
	})
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 500 {
				fmt.Fprint(w, "0123456789\n")
			}
		})
	}
	wg.Wait()
	if count != 4000 {
		t.Errorf("%d lines, want 4000", count)
	}
}
