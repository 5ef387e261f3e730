// Package billing holds the domain of alwrity-billing: plans, prices,
// subscriptions, billing periods, usage, limits and alerts, and the error
// vocabulary every other package speaks. It knows nothing of HTTP or SQL.
package billing

import (
	"errors"
	"fmt"
)

// Code classifies an error for the caller. Each code maps to exactly one HTTP
// status in the HTTP layer, so a handler never chooses a status itself.
type Code string

// The error codes of the whole service.
const (
	CodeInvalid       Code = "invalid"
	CodeNotFound      Code = "not_found"
	CodeConflict      Code = "conflict"
	CodeUnauthorized  Code = "unauthorized"
	CodeForbidden     Code = "forbidden"
	CodeLimitExceeded Code = "limit_exceeded"
	CodeTooLarge      Code = "too_large"
	CodeUnavailable   Code = "unavailable"
	CodeInternal      Code = "internal"
)

// FieldError names one bad input field and why it is bad.
type FieldError struct {
	Location string // e.g. "query.billing_period", "path.alert_id", "header.Authorization"
	Message  string
	Value    any
}

// Error is an error a person may read: its Message is shown to API clients,
// so it must never carry internal detail such as SQL text.
type Error struct {
	Code    Code
	Message string
	Fields  []FieldError
	// Limit says which limit refused an admission (CodeLimitExceeded).
	Limit *LimitInfo
}

// LimitInfo describes the limit that refused an admission. Amounts are
// pico-dollars when Money is set.
type LimitInfo struct {
	Key       string // total_calls, <provider>_calls, <provider>_tokens, monthly_cost
	Provider  string
	Used      int64 // settled usage this period
	Reserved  int64 // held by unsettled reservations
	Requested int64
	Limit     int64
	Money     bool
	Period    string
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %s", e.Code, e.Message) }

// Errorf returns an *Error with a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// InvalidField returns a CodeInvalid error naming one bad field.
func InvalidField(location, message string, value any) *Error {
	return &Error{
		Code:    CodeInvalid,
		Message: fmt.Sprintf("invalid %s: %s", location, message),
		Fields:  []FieldError{{Location: location, Message: message, Value: value}},
	}
}

// ErrorCode returns the code of err, CodeInternal for errors that carry none
// and "" for nil.
func ErrorCode(err error) Code {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}

// ErrorMessage returns the human-readable message of err. Errors without a
// code are internal and read "internal error" so their text never leaks.
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}
