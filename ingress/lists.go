package ingress

import (
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/wxpayd/wxpayd/actors"
	"github.com/wxpayd/wxpayd/actors/store"
)

// The order lists, newest first, a page at a time:
//
//	GET /api/v1/orders?limit=&cursor=                  the session's buyer's orders (buyer views)
//	GET /admin/v1/orders?limit=&cursor=&state=&from=&to=&openid=&shop_order_id=
//	                                                   every order (full records), filtered
//
// Answer: {"orders": [...], "next_cursor": "..."}; next_cursor is absent on
// the last page, and is passed back as cursor for the next one. A cursor is
// opaque (an index key, base64url) and belongs to its listing: another
// buyer's, or another filter's openid, is refused with 400 INVALID_CURSOR.
// Pages are read from the store's indexes (actors/store/index.go), written
// with each order's transitions, from one snapshot; orders are not woken.
// In cluster mode a node lists the orders of its own shard.

// Route labels of the lists.
const (
	routeOrdersList  = "orders.list"
	routeAdminOrders = "admin.orders.list"
)

const (
	defaultPageSize = 20
	maxPageSize     = 100
	// maxPageScan bounds the index entries one page examines. With a
	// state filter a page may come back short, with a next_cursor, rather
	// than read an unbounded history to fill itself.
	maxPageScan = 1000
	// maxCursorLen bounds a cursor as sent (base64url of an index key).
	maxCursorLen = 512
)

// orderList is a page of a list.
type orderList[T any] struct {
	Orders     []T    `json:"orders"`
	NextCursor string `json:"next_cursor,omitempty"`
}

// queryArgs returns the query's arguments, refusing (400) a name not in
// allowed or one given twice.
func (s *Server) queryArgs(ctx *fasthttp.RequestCtx, allowed ...string) (map[string]string, bool) {
	args := map[string]string{}
	bad := ""
	ctx.QueryArgs().VisitAll(func(k, v []byte) {
		name := string(k)
		switch {
		case bad != "":
		case !slices.Contains(allowed, name):
			bad = "unknown query parameter " + strconv.Quote(name)
		case hasKey(args, name):
			bad = "query parameter " + name + " given twice"
		default:
			args[name] = string(v)
		}
	})
	if bad != "" {
		s.badRequest(ctx, bad)
		return nil, false
	}
	return args, true
}

func hasKey(m map[string]string, k string) bool { _, ok := m[k]; return ok }

// pageQuery reads limit and cursor.
func (s *Server) pageQuery(ctx *fasthttp.RequestCtx, args map[string]string) (store.OrderQuery, bool) {
	q := store.OrderQuery{Limit: defaultPageSize, MaxScan: maxPageScan}
	if v, ok := args["limit"]; ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxPageSize {
			s.badRequest(ctx, "limit must be 1 to "+strconv.Itoa(maxPageSize))
			return q, false
		}
		q.Limit = n
	}
	if v, ok := args["cursor"]; ok {
		b, err := base64.RawURLEncoding.DecodeString(v)
		if err != nil || len(b) == 0 || len(v) > maxCursorLen {
			s.badCursor(ctx)
			return q, false
		}
		q.After = b
	}
	return q, true
}

func (s *Server) badCursor(ctx *fasthttp.RequestCtx) {
	s.fail(ctx, answer{fasthttp.StatusBadRequest, codeBadCursor, "cursor is not one this list handed out", 0})
}

// listOwnOrders answers GET /api/v1/orders: the session's buyer's orders.
func (s *Server) listOwnOrders(ctx *fasthttp.RequestCtx) {
	openid, ok := s.buyer(ctx)
	if !ok {
		return
	}
	args, ok := s.queryArgs(ctx, "limit", "cursor")
	if !ok {
		return
	}
	q, ok := s.pageQuery(ctx, args)
	if !ok {
		return
	}
	q.OpenID = openid
	page, ok := s.listPage(ctx, q)
	if !ok {
		return
	}
	out := orderList[orderView]{Orders: make([]orderView, 0, len(page.Orders)), NextCursor: cursorOf(page)}
	for i := range page.Orders {
		out.Orders = append(out.Orders, viewOf(&page.Orders[i]))
	}
	s.json(ctx, fasthttp.StatusOK, out)
}

// listOrders answers GET /admin/v1/orders: every order, or those of one
// buyer (openid), one state, one creation time range (from inclusive, to
// exclusive, RFC 3339), or the one order of a shop's order id.
func (s *Server) listOrders(ctx *fasthttp.RequestCtx) {
	args, ok := s.queryArgs(ctx, "limit", "cursor", "state", "from", "to", "openid", "shop_order_id")
	if !ok {
		return
	}
	q, ok := s.pageQuery(ctx, args)
	if !ok {
		return
	}
	if v, ok := args["state"]; ok {
		if !validState(v) {
			s.badRequest(ctx, "state must be one of CREATED, PREPAID, PAID, CLOSED, FAILED, REFUNDING, REFUNDED")
			return
		}
		q.State = store.State(v)
	}
	for _, p := range []struct {
		name string
		ms   *int64
	}{{"from", &q.FromMs}, {"to", &q.ToMs}} {
		if v, ok := args[p.name]; ok {
			t, err := time.Parse(time.RFC3339, v)
			if err != nil || t.UnixMilli() <= 0 {
				s.badRequest(ctx, p.name+" must be an RFC 3339 time after 1970, e.g. 2026-11-23T12:00:00+08:00")
				return
			}
			*p.ms = t.UnixMilli()
		}
	}
	if q.FromMs > 0 && q.ToMs > 0 && q.ToMs <= q.FromMs {
		s.badRequest(ctx, "to must be after from")
		return
	}
	if v, ok := args["openid"]; ok {
		if !validOpenID(v) {
			s.badRequest(ctx, "openid must be 1 to 128 characters of [0-9A-Za-z_-]")
			return
		}
		q.OpenID = v
	}
	if v, ok := args["shop_order_id"]; ok {
		if !validShopOrderID(v) {
			s.badRequest(ctx, "shop_order_id must be 1 to 64 characters of [0-9A-Za-z_-]")
			return
		}
		if q.After != nil {
			s.badRequest(ctx, "shop_order_id names one order: it takes no cursor")
			return
		}
		s.listShopOrder(ctx, v, q)
		return
	}
	page, ok := s.listPage(ctx, q)
	if !ok {
		return
	}
	if page.Orders == nil {
		page.Orders = []store.Order{}
	}
	s.json(ctx, fasthttp.StatusOK, orderList[store.Order]{Orders: page.Orders, NextCursor: cursorOf(page)})
}

// listShopOrder answers the admin list filtered by a shop's order id: its
// one order if it exists and passes the other filters.
func (s *Server) listShopOrder(ctx *fasthttp.RequestCtx, shopOrderID string, q store.OrderQuery) {
	st := s.d.Actors.Store()
	out := orderList[store.Order]{Orders: []store.Order{}}
	otn, found, err := st.ShopOrder(shopOrderID)
	if err != nil {
		s.failErr(ctx, fmt.Errorf("%w: %w", actors.ErrStore, err))
		return
	}
	if found {
		o, ok, err := st.GetOrder(otn)
		if err != nil {
			s.failErr(ctx, fmt.Errorf("%w: %w", actors.ErrStore, err))
			return
		}
		if ok && (q.State == "" || o.State == q.State) && (q.OpenID == "" || o.OpenID == q.OpenID) &&
			(q.FromMs == 0 || o.CreatedMs >= q.FromMs) && (q.ToMs == 0 || o.CreatedMs < q.ToMs) {
			out.Orders = append(out.Orders, o)
		}
	}
	s.json(ctx, fasthttp.StatusOK, out)
}

// listPage reads one page from the store, answering the errors.
func (s *Server) listPage(ctx *fasthttp.RequestCtx, q store.OrderQuery) (store.OrderPage, bool) {
	page, err := s.d.Actors.Store().ListOrders(q)
	switch {
	case errors.Is(err, store.ErrBadCursor):
		s.badCursor(ctx)
		return page, false
	case err != nil:
		s.failErr(ctx, fmt.Errorf("%w: list orders: %w", actors.ErrStore, err))
		return page, false
	}
	return page, true
}

func cursorOf(p store.OrderPage) string {
	if p.Next == nil {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString(p.Next)
}

func validState(s string) bool {
	switch store.State(s) {
	case store.StateCreated, store.StatePrepaid, store.StatePaid, store.StateClosed, store.StateFailed,
		store.StateRefunding, store.StateRefunded:
		return true
	}
	return false
}
