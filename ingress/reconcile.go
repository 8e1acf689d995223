package ingress

import (
	"errors"
	"strconv"

	"github.com/valyala/fasthttp"

	"github.com/wxpayd/wxpayd/actors/reconcile"
)

// Reconciliations serves the reconciliation admin API;
// *reconcile.Reconciler implements it. Safe for concurrent use.
type Reconciliations interface {
	// Request asks for a date's reconciliation (durably) and returns its
	// run as recorded.
	Request(date string) (reconcile.Run, error)
	// Report returns a date's run and up to limit of its discrepancies.
	Report(date string, limit int) (reconcile.Report, error)
	// Resolve resolves a discrepancy of a date by hand, with a note, and
	// returns it; one not open is returned as it is.
	Resolve(date, key, note string) (reconcile.Discrepancy, error)
}

// withReconciler answers 404 when no Reconciler is configured.
func (s *Server) withReconciler(h fasthttp.RequestHandler) fasthttp.RequestHandler {
	return func(ctx *fasthttp.RequestCtx) {
		if s.d.Reconciler == nil {
			s.fail(ctx, answer{fasthttp.StatusNotFound, codeNotFound, "no such route", 0})
			return
		}
		h(ctx)
	}
}

// maxReportDiscrepancies bounds the discrepancies one report lists.
const maxReportDiscrepancies = 1000

// requestReconciliation serves POST /admin/v1/reconciliations {"date"}:
// 202 with the run (pending, or as it stands when already pending or
// running). Asking again for a finished date starts its next run, which
// finds the same discrepancies without doubling their events.
func (s *Server) requestReconciliation(ctx *fasthttp.RequestCtx) {
	var req struct {
		Date string `json:"date"`
	}
	if err := decode(ctx, &req); err != nil {
		s.badRequest(ctx, err.Error())
		return
	}
	run, err := s.d.Reconciler.Request(req.Date)
	if err != nil {
		s.reconcileError(ctx, err)
		return
	}
	s.json(ctx, fasthttp.StatusAccepted, run)
}

// reconciliation serves GET /admin/v1/reconciliations/{date}[?limit=N]:
// the run (status, counts, sums ours and WeChat's) and its discrepancies.
func (s *Server) reconciliation(ctx *fasthttp.RequestCtx, date string) {
	limit := maxReportDiscrepancies
	if v := ctx.QueryArgs().Peek("limit"); len(v) > 0 {
		n, err := strconv.Atoi(string(v))
		if err != nil || n < 0 || n > maxReportDiscrepancies {
			s.badRequest(ctx, "limit must be 0 to "+strconv.Itoa(maxReportDiscrepancies))
			return
		}
		limit = n
	}
	rep, err := s.d.Reconciler.Report(date, limit)
	if err != nil {
		s.reconcileError(ctx, err)
		return
	}
	s.json(ctx, fasthttp.StatusOK, rep)
}

// resolveDiscrepancy serves POST
// /admin/v1/reconciliations/{date}/discrepancies/{key}/resolve {"note"}:
// 200 with the discrepancy resolved by hand, or as it stands when it was
// not open (a repeat changes nothing); 409 while the date's run is pending
// or running.
func (s *Server) resolveDiscrepancy(ctx *fasthttp.RequestCtx, date, key string) {
	var req struct {
		Note string `json:"note"`
	}
	if err := decode(ctx, &req); err != nil {
		s.badRequest(ctx, err.Error())
		return
	}
	d, err := s.d.Reconciler.Resolve(date, key, req.Note)
	if err != nil {
		s.reconcileError(ctx, err)
		return
	}
	s.json(ctx, fasthttp.StatusOK, d)
}

// reconcileError answers the reconciliation API's errors.
func (s *Server) reconcileError(ctx *fasthttp.RequestCtx, err error) {
	switch {
	case errors.Is(err, reconcile.ErrBadDate), errors.Is(err, reconcile.ErrBadNote):
		s.badRequest(ctx, err.Error())
	case errors.Is(err, reconcile.ErrNotFound):
		s.fail(ctx, answer{fasthttp.StatusNotFound, codeNotFound, "no reconciliation of that date", 0})
	case errors.Is(err, reconcile.ErrNoDiscrepancy):
		s.fail(ctx, answer{fasthttp.StatusNotFound, codeNotFound, "no discrepancy of that key on that date", 0})
	case errors.Is(err, reconcile.ErrRunInProgress):
		s.fail(ctx, answer{fasthttp.StatusConflict, codeConflict, "the date's reconciliation is pending or running: resolve once it is done", 0})
	case errors.Is(err, reconcile.ErrClosed):
		s.fail(ctx, answer{fasthttp.StatusServiceUnavailable, codeOverloaded, "shutting down", 1})
	default:
		s.failErr(ctx, err)
	}
}
