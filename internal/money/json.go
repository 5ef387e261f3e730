package money

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// MarshalJSON writes the amount as a bare JSON number in dollars, such as
// 0.00155, because API clients expect a number; the text is exact, so no
// precision is lost on our side. Clients that parse JSON numbers as float64
// will round, which is why UnmarshalJSON also accepts strings.
func (a Amount) MarshalJSON() ([]byte, error) {
	return a.appendText(make([]byte, 0, canonicalLen)), nil
}

// UnmarshalJSON reads a JSON number such as 0.00155, or a JSON string holding
// one such as "0.00155" (the form float-averse clients send), under the rules
// of Parse.
//
// null is rejected with ErrInvalid rather than ignored: a missing price or
// charge must not silently become zero or keep a stale value. Use *Amount
// for fields that may legitimately be absent.
func (a *Amount) UnmarshalJSON(b []byte) error {
	// Whitespace around a JSON value is insignificant; encoding/json strips
	// it, but direct callers may not.
	b = bytes.Trim(b, " \t\r\n")
	var (
		v   Amount
		err error
	)
	switch {
	case bytes.Equal(b, []byte("null")):
		err = fmt.Errorf("json null: %w", ErrInvalid)
	case len(b) > 0 && b[0] == '"':
		var s string
		if jerr := json.Unmarshal(b, &s); jerr != nil {
			err = fmt.Errorf("json string: %v: %w", jerr, ErrInvalid)
		} else {
			v, err = Parse(s)
		}
	default:
		v, err = Parse(string(b))
	}
	if err != nil {
		return fmt.Errorf("money: unmarshal json: %w", err)
	}
	*a = v
	return nil
}

// MarshalText writes the same exact decimal text as String, so amounts work
// as map keys in JSON and in text-based formats such as YAML and env files.
func (a Amount) MarshalText() ([]byte, error) {
	return a.appendText(make([]byte, 0, canonicalLen)), nil
}

// UnmarshalText reads decimal text under the rules of Parse, for the same
// formats MarshalText serves.
func (a *Amount) UnmarshalText(b []byte) error {
	v, err := Parse(string(b))
	if err != nil {
		return fmt.Errorf("money: unmarshal text: %w", err)
	}
	*a = v
	return nil
}
