package ingress

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/wxpayd/wxpayd/actors"
	"github.com/wxpayd/wxpayd/actors/event"
	"github.com/wxpayd/wxpayd/actors/reconcile"
	"github.com/wxpayd/wxpayd/actors/store"
	"github.com/wxpayd/wxpayd/wxpay"
)

// noBillWeChat is a WeChat with no bill for any day and no order: a day's
// payments here are all missing at WeChat.
type noBillWeChat struct{}

func (noBillWeChat) TradeBill(context.Context, string, wxpay.BillType, bool) (wxpay.BillInfo, error) {
	return wxpay.BillInfo{}, &wxpay.APIError{Status: 400, Code: wxpay.CodeNoStatementExist}
}
func (noBillWeChat) DownloadBill(context.Context, wxpay.BillInfo) (io.ReadCloser, error) {
	return nil, errors.New("no bill")
}
func (noBillWeChat) QueryByOutTradeNo(context.Context, string) (wxpay.Transaction, error) {
	return wxpay.Transaction{}, &wxpay.APIError{Status: 404, Code: "ORDER_NOT_EXIST"}
}
func (noBillWeChat) QueryRefund(context.Context, string) (wxpay.Refund, error) {
	return wxpay.Refund{}, &wxpay.APIError{Status: 404, Code: "RESOURCE_NOT_EXISTS"}
}

// noOrders refuses every repair (the test's discrepancies need none).
type noOrders struct{}

func (noOrders) Request(context.Context, actors.OrderMessage) (actors.Reply, error) {
	return actors.Reply{}, errors.New("no orders here")
}

// TestResolveDiscrepancyRoute: POST
// /admin/v1/reconciliations/{date}/discrepancies/{key}/resolve over a real
// Reconciler whose yesterday has one payment WeChat never saw: the admin
// token, the note's rules, unknown dates and keys, a date pending a rerun
// (409), the resolution and its repeat; every exchange as described.
func TestResolveDiscrepancyRoute(t *testing.T) {
	t.Parallel()
	st, err := store.Open(t.TempDir(), store.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	date := wxpay.BillDate(time.Now().AddDate(0, 0, -1))
	day, _ := wxpay.ParseBillDate(date)
	paid := day.Add(time.Hour).UnixMilli()
	w := st.NewWrite()
	w.PutOrder(&store.Order{OutTradeNo: "01H1", Seq: 3, State: store.StatePaid, Total: 1999, Currency: "CNY",
		TransactionID: "4200001", CreatedMs: paid - 1000, PaidMs: paid})
	w.IndexDay(&event.Event{Type: event.OrderPaid, OutTradeNo: "01H1", TimeMs: paid})
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	rec, err := reconcile.New(reconcile.Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, st,
		noBillWeChat{}, noOrders{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if run, err := rec.RunDate(context.Background(), date); err != nil || run.Open[reconcile.ClassPaymentMissingAtWeChat] != 1 {
		t.Fatalf("the reconciliation: %+v %v", run, err)
	}
	key := reconcile.ClassPaymentMissingAtWeChat + ":01H1"

	const token = "admin-token-0123456789"
	on := &Server{cfg: Config{AdminToken: []byte(token)}, d: Deps{Reconciler: rec}}
	off := &Server{cfg: Config{AdminToken: []byte(token)}}
	do := func(s *Server, method, uri, tok, body string) (int, []byte) {
		var ctx fasthttp.RequestCtx
		ctx.Request.Header.SetMethod(method)
		ctx.Request.SetRequestURI(uri)
		if tok != "" {
			ctx.Request.Header.Set("Authorization", "Bearer "+tok)
		}
		ctx.Request.SetBodyString(body)
		s.dispatch(&ctx)
		checkExchange(t, &ctx)
		return ctx.Response.StatusCode(), append([]byte(nil), ctx.Response.Body()...)
	}
	path := func(date, key string) string {
		return "/admin/v1/reconciliations/" + date + "/discrepancies/" + key + "/resolve"
	}
	note := `{"note": "WeChat ticket 7731: the payment was reversed by WeChat support"}`
	var resolved reconcile.Discrepancy
	for _, c := range []struct {
		name, method, uri, tok, body string
		status                       int
		code                         string // the error code; "" on success
	}{
		{"the admin token is required", "POST", path(date, key), "", note, 401, "UNAUTHORIZED"},
		{"POST only", "GET", path(date, key), token, "", 405, "METHOD_NOT_ALLOWED"},
		{"a bad date", "POST", path("2026-02-30", key), token, note, 400, "BAD_REQUEST"},
		{"a date never reconciled", "POST", path("2020-01-01", key), token, note, 404, "NOT_FOUND"},
		{"an unknown key", "POST", path(date, "unknown_order:01H1"), token, note, 404, "NOT_FOUND"},
		{"no body", "POST", path(date, key), token, "", 400, "BAD_REQUEST"},
		{"no note", "POST", path(date, key), token, `{}`, 400, "BAD_REQUEST"},
		{"an empty note", "POST", path(date, key), token, `{"note": ""}`, 400, "BAD_REQUEST"},
		{"a note of 501 characters", "POST", path(date, key), token, `{"note": "` + strings.Repeat("票", 501) + `"}`, 400, "BAD_REQUEST"},
		{"a note with a line break", "POST", path(date, key), token, `{"note": "ticket\n7731"}`, 400, "BAD_REQUEST"},
		{"a note of spaces", "POST", path(date, key), token, `{"note": "   "}`, 400, "BAD_REQUEST"},
		{"an unknown field", "POST", path(date, key), token, `{"note": "t", "by": "me"}`, 400, "BAD_REQUEST"},
		{"the resolution", "POST", path(date, key), token, note, 200, ""},
		{"a repeat changes nothing", "POST", path(date, key), token, `{"note": "again"}`, 200, ""},
		{"without a reconciler the route is off", "POST", path(date, key), token, note, 404, "NOT_FOUND"},
	} {
		s := on
		if strings.HasPrefix(c.name, "without") {
			s = off
		}
		status, body := do(s, c.method, c.uri, c.tok, c.body)
		if status != c.status || (c.code != "" && !strings.Contains(string(body), `"`+c.code+`"`)) {
			t.Fatalf("%s: %d %s, want %d %s", c.name, status, body, c.status, c.code)
		}
		if status != 200 {
			continue
		}
		var d reconcile.Discrepancy
		if err := json.Unmarshal(body, &d); err != nil {
			t.Fatal(err)
		}
		if resolved.Key == "" {
			resolved = d
		}
		if d != resolved || d.Status != reconcile.DiscrepancyResolved || d.ResolvedBy != "admin" ||
			d.ResolvedNote != "WeChat ticket 7731: the payment was reversed by WeChat support" {
			t.Fatalf("%s: %s", c.name, body)
		}
	}
	rep, err := rec.Report(date, 0)
	if err != nil || len(rep.Open) != 0 || rep.Resolved != 1 {
		t.Fatalf("the run after the resolution: %+v %v", rep.Run, err)
	}

	// While a rerun is pending, the run owns the records: 409.
	if _, err := rec.Request(date); err != nil {
		t.Fatal(err)
	}
	if status, body := do(on, "POST", path(date, key), token, note); status != 409 || !strings.Contains(string(body), `"CONFLICT"`) {
		t.Fatalf("while a rerun is pending: %d %s", status, body)
	}
}
