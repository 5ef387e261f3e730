package money

import (
	"database/sql/driver"
	"errors"
	"fmt"
	"strconv"
)

// Value stores the amount as an INTEGER count of pico-dollars, because every
// SQL engine sums and compares integers exactly, whereas REAL columns would
// bring back float rounding and NUMERIC support varies between engines.
func (a Amount) Value() (driver.Value, error) {
	return int64(a), nil
}

// Scan reads an integer count of pico-dollars as written by Value. It also
// accepts the integer as text, because SQLite may hand back a column's value
// as TEXT or BLOB depending on how it was inserted.
//
// NULL is an error, not zero, so that a missing amount is never billed as
// free; scan nullable columns into *Amount or sql.Null[Amount]. Floating
// point values are rejected because they mean the column lost exactness.
func (a *Amount) Scan(src any) error {
	var v int64
	switch x := src.(type) {
	case int64:
		v = x
	case int32:
		v = int64(x)
	case int:
		v = int64(x)
	case []byte:
		return a.scanText(string(x))
	case string:
		return a.scanText(x)
	case nil:
		return fmt.Errorf("money: scan NULL: %w", ErrInvalid)
	default:
		return fmt.Errorf("money: scan %T: %w", src, ErrInvalid)
	}
	*a = Amount(v)
	return nil
}

func (a *Amount) scanText(s string) error {
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		kind := ErrInvalid
		if errors.Is(err, strconv.ErrRange) {
			kind = ErrOverflow
		}
		return fmt.Errorf("money: scan pico-dollars %q: %w", clip(s), kind)
	}
	*a = Amount(v)
	return nil
}
