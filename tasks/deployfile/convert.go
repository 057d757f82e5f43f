package deployfile

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"time"

	"go.starlark.net/starlark"

	"github.com/davit-deploy/davit/deploy"
)

// toGo converts a Starlark value into the Go form variables hold, so Go
// recipes read a Deployfile's set() values as plain Go: None→nil, bool,
// int, float64, string, list/tuple→[]any, dict→map[string]any (string keys),
// host→*deploy.Host. ok is false for other values.
func toGo(v starlark.Value) (any, bool, error) {
	switch x := v.(type) {
	case starlark.NoneType:
		return nil, true, nil
	case starlark.Bool:
		return bool(x), true, nil
	case starlark.Int:
		n, ok := x.Int64()
		if !ok || n > math.MaxInt || n < math.MinInt {
			return nil, true, fmt.Errorf("integer %s is too large", x)
		}
		return int(n), true, nil
	case starlark.Float:
		return float64(x), true, nil
	case starlark.String:
		return string(x), true, nil
	case starlark.Bytes:
		return string(x), true, nil
	case *hostValue:
		return x.h, true, nil
	case *starlark.List:
		return seqToGo(x)
	case starlark.Tuple:
		return seqToGo(x)
	case *starlark.Dict:
		out := make(map[string]any, x.Len())
		for _, kv := range x.Items() {
			k, ok := starlark.AsString(kv[0])
			if !ok {
				return nil, false, nil
			}
			gv, ok, err := toGo(kv[1])
			if !ok || err != nil {
				return nil, ok, err
			}
			out[k] = gv
		}
		return out, true, nil
	}
	return nil, false, nil
}

func seqToGo(seq starlark.Indexable) (any, bool, error) {
	out := make([]any, seq.Len())
	for i := range out {
		gv, ok, err := toGo(seq.Index(i))
		if !ok || err != nil {
			return nil, ok, err
		}
		out[i] = gv
	}
	return out, true, nil
}

// toStarlark converts a variable's Go value for a Deployfile. Each call
// makes new lists and dicts, so threads never share mutable values.
func toStarlark(v any) (starlark.Value, error) {
	switch x := v.(type) {
	case nil:
		return starlark.None, nil
	case starlark.Value:
		return x, nil // stored frozen by set()
	case bool:
		return starlark.Bool(x), nil
	case int:
		return starlark.MakeInt(x), nil
	case int64:
		return starlark.MakeInt64(x), nil
	case int32:
		return starlark.MakeInt(int(x)), nil
	case uint:
		return starlark.MakeUint(x), nil
	case uint64:
		return starlark.MakeUint64(x), nil
	case float64:
		return starlark.Float(x), nil
	case float32:
		return starlark.Float(x), nil
	case string:
		return starlark.String(x), nil
	case []byte:
		return starlark.Bytes(x), nil
	case time.Duration:
		return starlark.Float(x.Seconds()), nil
	case *deploy.Host:
		return &hostValue{h: x}, nil
	case []*deploy.Host:
		return hostList(x), nil
	case []string:
		elems := make([]starlark.Value, len(x))
		for i, s := range x {
			elems[i] = starlark.String(s)
		}
		return starlark.NewList(elems), nil
	case []any:
		elems := make([]starlark.Value, len(x))
		for i, e := range x {
			sv, err := toStarlark(e)
			if err != nil {
				return nil, err
			}
			elems[i] = sv
		}
		return starlark.NewList(elems), nil
	case map[string]string:
		d := starlark.NewDict(len(x))
		for _, k := range slices.Sorted(maps.Keys(x)) {
			_ = d.SetKey(starlark.String(k), starlark.String(x[k]))
		}
		return d, nil
	case map[string]any:
		d := starlark.NewDict(len(x))
		for _, k := range slices.Sorted(maps.Keys(x)) {
			sv, err := toStarlark(x[k])
			if err != nil {
				return nil, err
			}
			_ = d.SetKey(starlark.String(k), sv)
		}
		return d, nil
	}
	return nil, fmt.Errorf("a Go %T has no Deployfile form", v)
}

func hostList(hs []*deploy.Host) *starlark.List {
	elems := make([]starlark.Value, len(hs))
	for i, h := range hs {
		elems[i] = &hostValue{h: h}
	}
	return starlark.NewList(elems)
}

// seconds reads a duration given in seconds (int or float); None is 0.
func seconds(what string, v starlark.Value) (time.Duration, error) {
	if v == nil || v == starlark.None {
		return 0, nil
	}
	f, ok := starlark.AsFloat(v)
	if !ok {
		return 0, fmt.Errorf("%s: want seconds (a number), got %s", what, v.Type())
	}
	if f < 0 {
		return 0, fmt.Errorf("%s: negative duration %v", what, f)
	}
	return time.Duration(f * float64(time.Second)), nil
}

// optString reads a string argument that may be None.
func optString(what string, v starlark.Value) (string, error) {
	if v == nil || v == starlark.None {
		return "", nil
	}
	s, ok := starlark.AsString(v)
	if !ok {
		return "", fmt.Errorf("%s: want a string, got %s", what, v.Type())
	}
	return s, nil
}

// stringList reads a list of strings, or a single string as a list of one.
func stringList(what string, v starlark.Value) ([]string, error) {
	if v == nil || v == starlark.None {
		return nil, nil
	}
	if s, ok := starlark.AsString(v); ok {
		return []string{s}, nil
	}
	it, ok := v.(starlark.Iterable)
	if !ok {
		return nil, fmt.Errorf("%s: want a list of strings, got %s", what, v.Type())
	}
	var out []string
	iter := it.Iterate()
	defer iter.Done()
	var x starlark.Value
	for iter.Next(&x) {
		s, ok := starlark.AsString(x)
		if !ok {
			return nil, fmt.Errorf("%s: want strings, got %s", what, x.Type())
		}
		out = append(out, s)
	}
	return out, nil
}

// word renders a command argument or environment value: strings as they
// are, numbers and booleans in their usual form.
func word(v starlark.Value) (string, bool) {
	switch x := v.(type) {
	case starlark.String:
		return string(x), true
	case starlark.Int:
		return x.String(), true
	case starlark.Float:
		return x.String(), true
	case starlark.Bool:
		if x {
			return "true", true
		}
		return "false", true
	}
	return "", false
}
