package scaling

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// ReadTrace reads a queue trace in CSV, one `minute,arrivals` row a line,
// an optional `minute,arrivals` header first. Minutes count from 0 and
// rise; a minute left out had no arrivals. name labels errors.
func ReadTrace(r io.Reader, name string) ([]int, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = 2
	cr.TrimLeadingSpace = true
	var out []int
	last := -1
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		line, _ := cr.FieldPos(0)
		if last < 0 && len(out) == 0 && strings.EqualFold(rec[0], "minute") {
			continue
		}
		minute, err := strconv.Atoi(strings.TrimSpace(rec[0]))
		if err != nil || minute < 0 {
			return nil, fmt.Errorf("%s:%d: minute %q is not a whole number from 0", name, line, rec[0])
		}
		n, err := strconv.Atoi(strings.TrimSpace(rec[1]))
		if err != nil || n < 0 {
			return nil, fmt.Errorf("%s:%d: arrivals %q is not a whole number from 0", name, line, rec[1])
		}
		if minute <= last {
			return nil, fmt.Errorf("%s:%d: minute %d comes after minute %d; minutes must rise", name, line, minute, last)
		}
		for len(out) < minute {
			out = append(out, 0)
		}
		out = append(out, n)
		last = minute
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no minutes in the trace", name)
	}
	return out, nil
}

// WriteTrace writes arrivals as ReadTrace reads them, with the header.
func WriteTrace(w io.Writer, arrivals []int) error {
	cw := csv.NewWriter(w)
	if err := cw.Write([]string{"minute", "arrivals"}); err != nil {
		return err
	}
	for m, n := range arrivals {
		if err := cw.Write([]string{strconv.Itoa(m), strconv.Itoa(n)}); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}
