package ingress

import (
	"errors"
	"strconv"

	"github.com/valyala/fasthttp"

	"github.com/wxpayd/wxpayd/actors/store"
)

// Webhooks is the dead-letter list of webhook deliveries, for the admin
// API. *webhook.Deliverer (sink/webhook) implements it.
type Webhooks interface {
	// DeadWebhooks returns up to limit dead letters with id > after,
	// oldest first.
	DeadWebhooks(after uint64, limit int) ([]store.DeadWebhook, error)
	// Redeliver queues dead letter id again; an error wrapping
	// store.ErrNoDeadWebhook if there is none.
	Redeliver(id uint64) error
}

// Route labels of the webhook admin routes.
const (
	routeWebhooksDead      = "admin.webhooks.dead"
	routeWebhookRedeliver  = "admin.webhooks.redeliver"
	maxDeadPage            = 1000
	defaultDeadPage        = 100
	webhooksPath           = "/admin/v1/webhooks/"
	webhooksDeadPath       = webhooksPath + "dead"
	webhookRedeliverSuffix = "/redeliver"
)

// webhooks routes /admin/v1/webhooks/...:
//
//	GET  /admin/v1/webhooks/dead?after=<id>&limit=<n>   dead letters, oldest first
//	POST /admin/v1/webhooks/dead/{id}/redeliver         queue one again
func (s *Server) webhooks(ctx *fasthttp.RequestCtx, method, path string) string {
	if path == webhooksDeadPath {
		return s.only(ctx, method, "GET", routeWebhooksDead, func(c *fasthttp.RequestCtx) { s.admin(c, s.deadWebhooks) })
	}
	if rest, ok := cutSuffix(path, webhookRedeliverSuffix); ok && hasPrefix(rest, webhooksDeadPath+"/") {
		id := rest[len(webhooksDeadPath)+1:]
		return s.only(ctx, method, "POST", routeWebhookRedeliver, func(c *fasthttp.RequestCtx) {
			s.admin(c, func(c *fasthttp.RequestCtx) { s.redeliverWebhook(c, id) })
		})
	}
	s.fail(ctx, answer{fasthttp.StatusNotFound, codeNotFound, "no such route", 0})
	return routeUnknown
}

// hooksOff answers 404 when no webhook endpoint is configured.
func (s *Server) hooksOff(ctx *fasthttp.RequestCtx) bool {
	if s.d.Webhooks == nil {
		s.fail(ctx, answer{fasthttp.StatusNotFound, codeNotFound, "webhooks are not configured (WXPAYD_WEBHOOK_URL)", 0})
		return true
	}
	return false
}

// deadWebhooks lists dead letters: {"dead": [...], "next": "<id>"}, next
// present when the page is full (pass it as after for the next page).
func (s *Server) deadWebhooks(ctx *fasthttp.RequestCtx) {
	if s.hooksOff(ctx) {
		return
	}
	args := ctx.QueryArgs()
	var after uint64
	if a := args.Peek("after"); len(a) > 0 {
		n, err := strconv.ParseUint(string(a), 10, 64)
		if err != nil {
			s.badRequest(ctx, "after must be a dead letter id")
			return
		}
		after = n
	}
	limit := defaultDeadPage
	if l := args.Peek("limit"); len(l) > 0 {
		n, err := strconv.Atoi(string(l))
		if err != nil || n < 1 || n > maxDeadPage {
			s.badRequest(ctx, "limit must be 1 to "+strconv.Itoa(maxDeadPage))
			return
		}
		limit = n
	}
	dead, err := s.d.Webhooks.DeadWebhooks(after, limit)
	if err != nil {
		s.failErr(ctx, err)
		return
	}
	page := struct {
		Dead []store.DeadWebhook `json:"dead"`
		Next string              `json:"next,omitempty"`
	}{Dead: dead}
	if page.Dead == nil {
		page.Dead = []store.DeadWebhook{}
	}
	if len(dead) == limit {
		page.Next = strconv.FormatUint(dead[len(dead)-1].ID, 10)
	}
	s.json(ctx, fasthttp.StatusOK, page)
}

// redeliverWebhook queues a dead letter again: 202 once it is queued.
func (s *Server) redeliverWebhook(ctx *fasthttp.RequestCtx, idStr string) {
	if s.hooksOff(ctx) {
		return
	}
	id, err := strconv.ParseUint(idStr, 10, 64)
	if err != nil {
		s.fail(ctx, answer{fasthttp.StatusNotFound, codeNotFound, "no such dead letter", 0})
		return
	}
	switch err := s.d.Webhooks.Redeliver(id); {
	case errors.Is(err, store.ErrNoDeadWebhook):
		s.fail(ctx, answer{fasthttp.StatusNotFound, codeNotFound, "no such dead letter", 0})
	case err != nil:
		s.failErr(ctx, err)
	default:
		s.json(ctx, fasthttp.StatusAccepted, struct {
			ID     uint64 `json:"id"`
			Status string `json:"status"`
		}{id, "queued"})
	}
}
