package boot

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// keyPattern is what a user data key must look like: it becomes a
// variable name, which the command line's KEY=VALUE words share.
var keyPattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// UserDataError is user data that cannot be read; Part quotes the piece
// that is wrong.
type UserDataError struct {
	Part   string
	Reason string
}

func (e *UserDataError) Error() string {
	if e.Part == "" {
		return "user data: " + e.Reason
	}
	// Quoted as written, not Go-escaped: the part is often JSON.
	return "user data: `" + e.Part + "`: " + e.Reason
}

// ParseUserData reads user data as run variables, keys lower-cased:
// either a JSON object ({"DB": "10.0.0.5", "ROLE": "job"}; values strings,
// numbers or booleans) or KEY=VALUE pairs separated by ';' or line breaks
// (DB=10.0.0.5;ROLE=job, what the launcher sends). Blank pairs are
// skipped and spaces around keys and values trimmed. A pair without '=',
// an empty or invalid key, a key given twice with different values and
// JSON that is not an object are errors quoting the bad part. Empty user
// data is no variables.
func ParseUserData(data []byte) (map[string]string, error) {
	text := bytes.TrimSpace(bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")))
	vars := map[string]string{}
	if len(text) == 0 {
		return vars, nil
	}
	if text[0] == '{' || text[0] == '[' || text[0] == '"' {
		return parseJSON(text)
	}
	for _, part := range strings.FieldsFunc(string(text), func(r rune) bool { return r == ';' || r == '\n' || r == '\r' }) {
		pair := strings.TrimSpace(part)
		if pair == "" {
			continue
		}
		k, v, ok := strings.Cut(pair, "=")
		if !ok {
			return nil, &UserDataError{Part: pair, Reason: "want KEY=VALUE"}
		}
		if err := add(vars, strings.TrimSpace(k), strings.TrimSpace(v), pair); err != nil {
			return nil, err
		}
	}
	return vars, nil
}

// add records key=value, lower-casing the key.
func add(vars map[string]string, key, value, part string) error {
	if key == "" {
		return &UserDataError{Part: part, Reason: "empty key"}
	}
	if !keyPattern.MatchString(key) {
		return &UserDataError{Part: part, Reason: "a key is letters, digits and _, not starting with a digit"}
	}
	name := strings.ToLower(key)
	if old, seen := vars[name]; seen && old != value {
		return &UserDataError{Part: part, Reason: fmt.Sprintf("%s is given twice with different values (%q and %q)", key, old, value)}
	}
	vars[name] = value
	return nil
}

func parseJSON(text []byte) (map[string]string, error) {
	dec := json.NewDecoder(bytes.NewReader(text))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil {
		return nil, &UserDataError{Part: excerpt(text), Reason: "not a JSON object: " + err.Error()}
	}
	if dec.More() {
		return nil, &UserDataError{Part: excerpt(text), Reason: "text after the JSON object"}
	}
	vars := map[string]string{}
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	// Sorted, so which of two clashing keys is reported does not depend
	// on map order.
	sort.Strings(keys)
	for _, k := range keys {
		var s string
		switch v := obj[k].(type) {
		case string:
			s = v
		case json.Number:
			s = v.String()
		case bool:
			s = strconv.FormatBool(v)
		default:
			return nil, &UserDataError{Part: fmt.Sprintf("%q: %s", k, excerpt(mustJSON(v))), Reason: "want a string, number or boolean"}
		}
		if err := add(vars, k, s, fmt.Sprintf("%q: %q", k, s)); err != nil {
			return nil, err
		}
	}
	return vars, nil
}

func mustJSON(v any) []byte {
	b, _ := json.Marshal(v)
	return b
}

// excerpt is the start of text, for an error message.
func excerpt(text []byte) string {
	const limit = 60
	s := string(text)
	if len(s) > limit {
		return s[:limit] + "…"
	}
	return s
}
