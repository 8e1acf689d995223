package ingress

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/valyala/fasthttp"

	"github.com/wxpayd/wxpayd/actors/event"
	"github.com/wxpayd/wxpayd/actors/store"
)

// storeHooks serves the dead letters straight from a store, as the
// deliverer does.
type storeHooks struct{ st *store.Store }

func (h storeHooks) DeadWebhooks(after uint64, limit int) ([]store.DeadWebhook, error) {
	return h.st.DeadWebhooks(after, limit)
}
func (h storeHooks) Redeliver(id uint64) error { return h.st.RequeueDeadWebhook(id) }

func TestWebhookAdminRoutes(t *testing.T) {
	t.Parallel()
	st, err := store.Open(t.TempDir(), store.Options{NoSync: true, Webhook: func(*event.Event) bool { return true }})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for i := range 3 {
		otn := fmt.Sprintf("01H%d", i)
		w := st.NewWrite()
		w.PutOrder(&store.Order{OutTradeNo: otn, State: store.StatePaid, Seq: 1})
		w.AddEvent(&event.Event{EventID: event.ID(otn, 1), Type: event.OrderPaid, OutTradeNo: otn, Seq: 1, TimeMs: 1})
		if err := w.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	q, _ := st.ReadWebhooks(0, 10)
	for _, e := range q {
		if _, err := st.ParkWebhook(e, store.WebhookTries{Attempts: 30, LastError: "HTTP 500"}, 5); err != nil {
			t.Fatal(err)
		}
	}
	const token = "admin-token-0123456789"
	on := &Server{cfg: Config{AdminToken: []byte(token)}, d: Deps{Webhooks: storeHooks{st}}}
	off := &Server{cfg: Config{AdminToken: []byte(token)}}
	do := func(s *Server, method, uri, tok string) (int, []byte) {
		var ctx fasthttp.RequestCtx
		ctx.Request.Header.SetMethod(method)
		ctx.Request.SetRequestURI(uri)
		if tok != "" {
			ctx.Request.Header.Set("Authorization", "Bearer "+tok)
		}
		s.dispatch(&ctx)
		checkExchange(t, &ctx)
		return ctx.Response.StatusCode(), append([]byte(nil), ctx.Response.Body()...)
	}
	type page struct {
		Dead []store.DeadWebhook `json:"dead"`
		Next string              `json:"next"`
	}
	cases := []struct {
		name   string
		s      *Server
		method string
		uri    string
		tok    string
		status int
		check  func(b []byte) error
	}{
		{"the list needs the admin token", on, "GET", "/admin/v1/webhooks/dead", "", 401, nil},
		{"the list is oldest first, paged with next", on, "GET", "/admin/v1/webhooks/dead?limit=2", token, 200, func(b []byte) error {
			var p page
			if err := json.Unmarshal(b, &p); err != nil || len(p.Dead) != 2 || p.Dead[0].ID != 1 || p.Next != "2" ||
				p.Dead[0].EventID != "01H0:1" || p.Dead[0].Attempts != 30 || p.Dead[0].LastError != "HTTP 500" || len(p.Dead[0].Event) == 0 {
				return fmt.Errorf("page %s", b)
			}
			return nil
		}},
		{"the next page ends without next", on, "GET", "/admin/v1/webhooks/dead?after=2&limit=2", token, 200, func(b []byte) error {
			var p page
			if err := json.Unmarshal(b, &p); err != nil || len(p.Dead) != 1 || p.Dead[0].ID != 3 || p.Next != "" {
				return fmt.Errorf("page %s", b)
			}
			return nil
		}},
		{"a bad limit is refused", on, "GET", "/admin/v1/webhooks/dead?limit=0", token, 400, nil},
		{"a bad cursor is refused", on, "GET", "/admin/v1/webhooks/dead?after=x", token, 400, nil},
		{"the list is GET only", on, "POST", "/admin/v1/webhooks/dead", token, 405, nil},
		{"redeliver queues the dead letter", on, "POST", "/admin/v1/webhooks/dead/2/redeliver", token, 202, nil},
		{"a second redeliver finds nothing", on, "POST", "/admin/v1/webhooks/dead/2/redeliver", token, 404, nil},
		{"an unknown id is 404", on, "POST", "/admin/v1/webhooks/dead/77/redeliver", token, 404, nil},
		{"a malformed id is 404", on, "POST", "/admin/v1/webhooks/dead/x/redeliver", token, 404, nil},
		{"redeliver is POST only", on, "GET", "/admin/v1/webhooks/dead/1/redeliver", token, 405, nil},
		{"redeliver needs the admin token", on, "POST", "/admin/v1/webhooks/dead/1/redeliver", "nope", 401, nil},
		{"the rest of the list after a redeliver", on, "GET", "/admin/v1/webhooks/dead", token, 200, func(b []byte) error {
			var p page
			if err := json.Unmarshal(b, &p); err != nil || len(p.Dead) != 2 || p.Dead[0].ID != 1 || p.Dead[1].ID != 3 {
				return fmt.Errorf("page %s", b)
			}
			return nil
		}},
		{"an unknown webhook route is 404", on, "GET", "/admin/v1/webhooks/other", token, 404, nil},
		{"without webhooks configured the list is 404", off, "GET", "/admin/v1/webhooks/dead", token, 404, nil},
		{"without webhooks configured redeliver is 404", off, "POST", "/admin/v1/webhooks/dead/1/redeliver", token, 404, nil},
	}
	for _, c := range cases { // in order: redeliver changes the list
		status, body := do(c.s, c.method, c.uri, c.tok)
		if status != c.status {
			t.Fatalf("%s: %d %s, want %d", c.name, status, body, c.status)
		}
		if c.check != nil {
			if err := c.check(body); err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
		}
	}
	if q, _ := st.ReadWebhooks(0, 10); len(q) != 1 || q[0].OutTradeNo != "01H1" {
		t.Fatalf("queue after redeliver: %+v", q)
	}
}
