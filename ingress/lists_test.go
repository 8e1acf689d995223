package ingress

import (
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/wxpayd/wxpayd/actors/store"
)

type buyerPage struct {
	Orders []struct {
		OutTradeNo string `json:"out_trade_no"`
		State      string `json:"state"`
		CreatedAt  string `json:"created_at"`
	} `json:"orders"`
	NextCursor string `json:"next_cursor"`
}

type adminPage struct {
	Orders     []store.Order `json:"orders"`
	NextCursor string        `json:"next_cursor"`
}

// pages follows next_cursor from path (which has a query) to the end and
// returns every page's body; it fails on anything but 200 or on too many
// pages.
func (s *stack) pages(path, token string) [][]byte {
	s.t.Helper()
	var out [][]byte
	cursor := ""
	for i := 0; ; i++ {
		if i > 1000 {
			s.t.Fatalf("%s: no end of pages", path)
		}
		p := path
		if cursor != "" {
			p += "&cursor=" + url.QueryEscape(cursor)
		}
		st, b, _ := s.do("GET", p, token, nil)
		if st != 200 {
			s.t.Fatalf("GET %s: %d %s", p, st, b)
		}
		out = append(out, b)
		var next struct {
			NextCursor string `json:"next_cursor"`
		}
		_ = json.Unmarshal(b, &next)
		if next.NextCursor == "" {
			return out
		}
		cursor = next.NextCursor
	}
}

func (s *stack) adminList(query string) []store.Order {
	s.t.Helper()
	var all []store.Order
	for _, b := range s.pages("/admin/v1/orders?"+query, s.admin) {
		var p adminPage
		if err := json.Unmarshal(b, &p); err != nil || p.Orders == nil {
			s.t.Fatalf("admin page %s: %v", b, err)
		}
		all = append(all, p.Orders...)
	}
	return all
}

func otns(os []store.Order) []string {
	var out []string
	for _, o := range os {
		out = append(out, o.OutTradeNo)
	}
	return out
}

// newestFirst fails unless the orders run from the newest to the oldest
// and each appears once.
func newestFirst(t *testing.T, what string, os []store.Order) {
	t.Helper()
	seen := map[string]bool{}
	for i, o := range os {
		if seen[o.OutTradeNo] {
			t.Fatalf("%s: %s listed twice", what, o.OutTradeNo)
		}
		seen[o.OutTradeNo] = true
		if i > 0 && o.CreatedMs > os[i-1].CreatedMs {
			t.Fatalf("%s: %s (created %d) after %s (created %d)", what, o.OutTradeNo, o.CreatedMs, os[i-1].OutTradeNo, os[i-1].CreatedMs)
		}
	}
}

// TestEndToEndOrderListsPaginate: two buyers' orders (checkouts and a
// flash-sale order), some paid; the buyer's list and the admin's, with and
// without filters, page through every matching order exactly once, newest
// first; cursors and parameters are checked.
func TestEndToEndOrderListsPaginate(t *testing.T) {
	s := newStack(t, stackOpts{})
	s.putSKU("list", 5)
	a, b := s.loginAs("ivan"), s.loginAs("judy")
	mine := map[string][]string{}
	var paid []string
	checkout := func(tok, id string) created {
		st, c, body := s.checkoutCall(map[string]any{"shop_order_id": id, "session": tok, "amount": 100, "description": "d"})
		if st != 201 {
			t.Fatalf("checkout %s: %d %s", id, st, body)
		}
		return c.created
	}
	for i := 0; i < 25; i++ {
		c := checkout(a, fmt.Sprintf("L-A-%02d", i))
		mine[a] = append(mine[a], c.OutTradeNo)
		if i%8 == 3 {
			if code := s.simPay(c.Payment.Package, s.openid(a)); code != 201 {
				t.Fatalf("sim pay: %d", code)
			}
			paid = append(paid, c.OutTradeNo)
		}
		if i%5 == 0 {
			s.clock.advance(700 * time.Millisecond) // spread creation over a few seconds
		}
	}
	st, c, body := s.order(a, "list")
	if st != 201 {
		t.Fatalf("flash-sale order: %d %s", st, body)
	}
	mine[a] = append(mine[a], c.OutTradeNo)
	for i := 0; i < 4; i++ {
		mine[b] = append(mine[b], checkout(b, fmt.Sprintf("L-B-%02d", i)).OutTradeNo)
	}
	for _, otn := range paid {
		eventually(t, "paid", func() bool { return s.get(a, otn).State == "PAID" })
	}

	// Each buyer's own list: exactly their orders, once, newest first.
	var bCursor string
	for _, tok := range []string{a, b} {
		var got []string
		var last time.Time
		pages := s.pages("/api/v1/orders?limit=7", tok)
		for i, raw := range pages {
			var p buyerPage
			_ = json.Unmarshal(raw, &p)
			if i < len(pages)-1 && len(p.Orders) != 7 {
				t.Fatalf("page %d holds %d orders, limit 7", i, len(p.Orders))
			}
			for _, o := range p.Orders {
				at, _ := time.Parse(time.RFC3339, o.CreatedAt)
				if !last.IsZero() && at.After(last) {
					t.Fatalf("%s created %s listed after an order of %s", o.OutTradeNo, at, last)
				}
				last = at
				got = append(got, o.OutTradeNo)
			}
		}
		want := slices.Clone(mine[tok])
		slices.Sort(want)
		sorted := slices.Clone(got)
		slices.Sort(sorted)
		if !slices.Equal(sorted, want) || len(slices.Compact(sorted)) != len(got) {
			t.Fatalf("listed %d orders %v, want %v", len(got), got, want)
		}
	}
	// A cursor of b's list, to try elsewhere.
	var bPage buyerPage
	if _, body, _ := s.do("GET", "/api/v1/orders?limit=1", b, nil); json.Unmarshal(body, &bPage) != nil || bPage.NextCursor == "" {
		t.Fatalf("b's first page: %s", body)
	}
	bCursor = bPage.NextCursor
	// The default page is 20.
	if _, body, _ := s.do("GET", "/api/v1/orders", a, nil); strings.Count(string(body), `"out_trade_no"`) != 20 {
		t.Fatalf("default page: %s", body)
	}
	for _, tc := range []struct {
		name, path, token string
		status            int
		code              string
	}{
		{"another buyer's cursor", "/api/v1/orders?cursor=" + bCursor, a, 400, "INVALID_CURSOR"},
		{"a cursor of garbage", "/api/v1/orders?cursor=!!!", a, 400, "INVALID_CURSOR"},
		{"a cursor of made-up bytes", "/api/v1/orders?cursor=AAAAAAAAAAAAAAAA", a, 400, "INVALID_CURSOR"},
		{"a cursor too long", "/api/v1/orders?cursor=" + strings.Repeat("A", 600), a, 400, "INVALID_CURSOR"},
		{"limit 0", "/api/v1/orders?limit=0", a, 400, "BAD_REQUEST"},
		{"limit 101", "/api/v1/orders?limit=101", a, 400, "BAD_REQUEST"},
		{"limit x", "/api/v1/orders?limit=x", a, 400, "BAD_REQUEST"},
		{"an unknown parameter", "/api/v1/orders?state=PAID", a, 400, "BAD_REQUEST"},
		{"a parameter twice", "/api/v1/orders?limit=1&limit=2", a, 400, "BAD_REQUEST"},
		{"no session", "/api/v1/orders", "", 401, "UNAUTHORIZED"},
		{"no admin token", "/admin/v1/orders", a, 401, "UNAUTHORIZED"},
		{"an unknown state", "/admin/v1/orders?state=LOST", s.admin, 400, "BAD_REQUEST"},
		{"a bad time", "/admin/v1/orders?from=yesterday", s.admin, 400, "BAD_REQUEST"},
		{"to before from", "/admin/v1/orders?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z", s.admin, 400, "BAD_REQUEST"},
		{"a bad openid", "/admin/v1/orders?openid=a%20b", s.admin, 400, "BAD_REQUEST"},
		{"a shop order id with a cursor", "/admin/v1/orders?shop_order_id=L-A-01&cursor=" + bCursor, s.admin, 400, "BAD_REQUEST"},
		{"a buyer's cursor on the admin list", "/admin/v1/orders?cursor=" + bCursor, s.admin, 400, "INVALID_CURSOR"},
	} {
		st, body, _ := s.do("GET", tc.path, tc.token, nil)
		if st != tc.status || !strings.Contains(string(body), `"`+tc.code+`"`) {
			t.Errorf("%s: %d %s", tc.name, st, body)
		}
	}
	if st, _, h := s.do("DELETE", "/api/v1/orders", a, nil); st != 405 || h.Get("Allow") != "GET, POST" {
		t.Errorf("DELETE /api/v1/orders: %d %q", st, h.Get("Allow"))
	}

	// The admin's list: every order; then each filter against the full list.
	all := s.adminList("limit=9")
	newestFirst(t, "all", all)
	if len(all) != len(mine[a])+len(mine[b]) {
		t.Fatalf("admin lists %d orders, %d exist", len(all), len(mine[a])+len(mine[b]))
	}
	filter := func(keep func(o store.Order) bool) []string {
		var out []string
		for _, o := range all {
			if keep(o) {
				out = append(out, o.OutTradeNo)
			}
		}
		return out
	}
	var (
		openidA = s.openid(a)
		from    = time.UnixMilli(all[len(all)/2].CreatedMs).Truncate(time.Second)
		to      = from.Add(time.Second)
	)
	for _, tc := range []struct {
		query string
		keep  func(o store.Order) bool
	}{
		{"state=PAID&limit=2", func(o store.Order) bool { return o.State == store.StatePaid }},
		{"state=PREPAID&openid=" + openidA, func(o store.Order) bool { return o.State == store.StatePrepaid && o.OpenID == openidA }},
		{"state=FAILED", func(o store.Order) bool { return false }},
		{"openid=" + s.openid(b) + "&limit=1", func(o store.Order) bool { return o.OpenID == s.openid(b) }},
		{"from=" + url.QueryEscape(from.Format(time.RFC3339)) + "&to=" + url.QueryEscape(to.Format(time.RFC3339)) + "&limit=3",
			func(o store.Order) bool { return o.CreatedMs >= from.UnixMilli() && o.CreatedMs < to.UnixMilli() }},
		{"from=" + url.QueryEscape(from.Format(time.RFC3339)), func(o store.Order) bool { return o.CreatedMs >= from.UnixMilli() }},
		{"shop_order_id=L-A-03", func(o store.Order) bool { return o.ShopOrderID == "L-A-03" }},
		{"shop_order_id=L-A-03&state=CLOSED", func(o store.Order) bool { return false }},
		{"shop_order_id=NOPE", func(o store.Order) bool { return false }},
	} {
		got := s.adminList(tc.query)
		newestFirst(t, tc.query, got)
		if want := filter(tc.keep); !slices.Equal(otns(got), want) {
			t.Fatalf("%s: listed %v, want %v", tc.query, otns(got), want)
		}
	}
	if got := s.adminList("shop_order_id=L-A-03"); len(got) != 1 || got[0].State != store.StatePaid {
		t.Fatalf("the paid shop order: %+v", got)
	}
}
