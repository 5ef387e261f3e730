package httpapi

import (
	"context"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/alwrity/alwrity-billing/internal/billing"
)

type listLogsInput struct {
	Limit         int    `query:"limit" minimum:"1" maximum:"5000" default:"50"`
	Offset        int    `query:"offset" minimum:"0" default:"0" doc:"Rows to skip. A deep offset costs as much as the rows it skips; follow next_cursor instead to page cheaply."`
	Cursor        string `query:"cursor" doc:"The next_cursor of the previous page, opaque: the page starts right after that page's last row, so every page costs the same however deep. Not combined with offset; the filters are those of the first page."`
	Provider      string `query:"provider" maxLength:"64"`
	StatusCode    int    `query:"status_code" minimum:"0" maximum:"599"`
	BillingPeriod string `query:"billing_period" pattern:"^[0-9]{4}-[0-9]{2}$"`
	UserID        string `query:"user_id" maxLength:"128" doc:"Admins only: another user's logs (all users when omitted)."`
}

func (s *Server) listUsageLogs(ctx context.Context, in *listLogsInput) (*struct{ Body LogsBody }, error) {
	p, err := s.auth.Principal(ctx)
	if err != nil {
		return nil, s.problem(ctx, err)
	}
	// One row more than the page tells whether another page follows.
	f := billing.LogFilter{UserID: p.UserID, Provider: in.Provider, StatusCode: in.StatusCode,
		BillingPeriod: in.BillingPeriod, Limit: in.Limit + 1, Offset: in.Offset}
	switch {
	case p.IsAdmin():
		f.UserID = in.UserID
	case in.UserID != "" && in.UserID != p.UserID:
		return nil, s.problem(ctx, billing.Errorf(billing.CodeForbidden, "this key may not read the logs of user %q", in.UserID))
	}
	if in.Provider != "" {
		if err := s.checkProvider(ctx, "query.provider", in.Provider); err != nil {
			return nil, s.problem(ctx, err)
		}
	}
	if in.BillingPeriod != "" {
		if err := checkPeriodKey("query.billing_period", in.BillingPeriod); err != nil {
			return nil, s.problem(ctx, err)
		}
	}
	if in.Cursor != "" {
		if in.Offset != 0 {
			return nil, s.problem(ctx, billing.InvalidField("query.offset", "must be 0 with a cursor, which already says where the page starts", in.Offset))
		}
		pos, err := decodeLogCursor(in.Cursor)
		if err != nil {
			return nil, s.problem(ctx, err)
		}
		f.Before = &pos
	}
	logs, total, err := s.store.ListLogs(ctx, f)
	if err != nil {
		return nil, s.problem(ctx, err)
	}
	more := len(logs) > in.Limit
	logs = logs[:min(len(logs), in.Limit)]
	body := LogsBody{Logs: make([]LogJSON, 0, len(logs)), TotalCount: total, Limit: in.Limit, Offset: in.Offset, HasMore: more}
	if more {
		last := logs[len(logs)-1]
		next := encodeLogCursor(billing.LogPosition{Timestamp: last.Timestamp, ID: last.ID})
		body.NextCursor = &next
	}
	for _, l := range logs {
		lj := LogJSON{
			ID: l.ID, EventID: l.EventID, UserID: l.UserID, Timestamp: l.Timestamp, Provider: l.Provider,
			ModelUsed: l.ModelUsed, Endpoint: l.Endpoint, Method: l.Method,
			TokensInput: l.TokensInput, TokensOutput: l.TokensOutput, TokensTotal: l.TokensTotal(),
			TokensCachedInput: l.TokensCachedInput, TokensCacheWrite5m: l.TokensCacheWrite5m,
			TokensCacheWrite1h: l.TokensCacheWrite1h, TokensReasoning: l.TokensReasoning,
			CostInput: l.CostInput, CostOutput: l.CostOutput, CostTotal: l.CostTotal,
			ResponseTime: l.ResponseTime, StatusCode: l.StatusCode, Status: "success",
			BillingPeriod: l.BillingPeriod, RetryCount: l.RetryCount, Unpriced: l.Unpriced, Partial: l.Partial,
		}
		if l.Failed() {
			lj.Status = "failed"
		}
		if l.ErrorMessage != "" {
			lj.ErrorMessage = &l.ErrorMessage
		}
		body.Logs = append(body.Logs, lj)
	}
	return &struct{ Body LogsBody }{Body: body}, nil
}

// A log cursor is the position of a page's last row, "v1:<unix
// microseconds>:<id>" in unpadded URL-safe base64. Clients treat it as
// opaque, so its form may change with its version prefix. Stored times have
// microsecond precision, so the position is exact.
const logCursorVersion = "v1:"

// maxLogCursor bounds a cursor's length, well above the longest encoding.
const maxLogCursor = 64

// Timestamps a cursor may carry: year 1 to 9999, the range of the stored
// text and of RFC 3339.
var (
	minCursorMicros = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()
	maxCursorMicros = time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC).UnixMicro()
)

func encodeLogCursor(p billing.LogPosition) string {
	raw := fmt.Sprintf("%s%d:%d", logCursorVersion, p.Timestamp.UnixMicro(), p.ID)
	return base64.RawURLEncoding.EncodeToString([]byte(raw))
}

// decodeLogCursor reads a cursor that encodeLogCursor wrote and refuses
// anything else (another encoding of the same position included) with an
// invalid-input error on query.cursor.
func decodeLogCursor(c string) (billing.LogPosition, error) {
	bad := func(why string) (billing.LogPosition, error) {
		return billing.LogPosition{}, billing.InvalidField("query.cursor",
			"not a cursor this API returned ("+why+"); pass next_cursor of the previous page unchanged, or leave cursor out to start again", c)
	}
	if len(c) > maxLogCursor {
		// Checked here rather than by a schema limit so that every bad
		// cursor is answered alike.
		return billing.LogPosition{}, billing.InvalidField("query.cursor",
			fmt.Sprintf("not a cursor this API returned (longer than %d characters)", maxLogCursor), nil)
	}
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return bad("not base64url")
	}
	rest, ok := strings.CutPrefix(string(raw), logCursorVersion)
	if !ok {
		return bad("unknown version")
	}
	micros, id, ok := strings.Cut(rest, ":")
	if !ok {
		return bad("no id")
	}
	us, err1 := strconv.ParseInt(micros, 10, 64)
	n, err2 := strconv.ParseInt(id, 10, 64)
	if err1 != nil || err2 != nil || us < minCursorMicros || us > maxCursorMicros || n < 1 {
		return bad("position out of range")
	}
	p := billing.LogPosition{Timestamp: time.UnixMicro(us).UTC(), ID: n}
	if encodeLogCursor(p) != c {
		return bad("not in canonical form")
	}
	return p, nil
}
