package main

import (
	"context"
	"slices"
	"sync"

	"github.com/wxpayd/wxpayd/actors/reconcile"
	"github.com/wxpayd/wxpayd/sink/clickhouse"
	"github.com/wxpayd/wxpayd/wxpay"
)

// newReconciler builds the daily reconciliation (WXPAYD_RECONCILE_*) over
// the store, the WeChat client and the orders (the cluster's router in
// cluster mode). It loads bills into ClickHouse when the in-process sink
// is configured (WXPAYD_CLICKHOUSE_*), connecting at the first load; without
// ClickHouse the results stay in the store.
func (a *app) newReconciler(v values) (*reconcile.Reconciler, error) {
	at, err := reconcile.ParseTimeOfDay(v["WXPAYD_RECONCILE_AT"])
	if err != nil {
		return nil, cfgErr("WXPAYD_RECONCILE_AT: %q: %w", v["WXPAYD_RECONCILE_AT"], err)
	}
	days, err := v.integer("WXPAYD_RECONCILE_CATCHUP_DAYS")
	if err != nil {
		return nil, configError{err}
	}
	if days < 1 || days > reconcile.MaxDays {
		return nil, cfgErr("WXPAYD_RECONCILE_CATCHUP_DAYS: %d: want 1 to %d", days, reconcile.MaxDays)
	}
	var orders reconcile.Orders = a.sys
	if a.node != nil {
		orders = a.node
	}
	var loader reconcile.Loader
	if a.events.sink != nil {
		loader = &chLoader{cfg: a.events.sink.ClickHouse}
	}
	return reconcile.New(reconcile.Config{
		At: at, CatchUpDays: days, Skip: reconcileSkip(v["WXPAYD_SHARD"], v.list("WXPAYD_CLUSTER_SHARDS")),
		Logger: a.log, Registerer: a.registry,
	}, a.store, a.reconcileClient(), orders, loader)
}

// reconcileSkip is which bill rows this node leaves to others: in cluster
// mode, orders of the other shards; rows of orders no shard made (another
// system's) are reported by the node of the first shard listed. A single
// node reconciles every row.
func reconcileSkip(shard string, shards []string) func(string) bool {
	if len(shards) == 0 {
		return nil
	}
	reportsForeign := shards[0] == shard
	return func(otn string) bool {
		if len(otn) >= 2 {
			switch p := otn[:2]; {
			case p == shard:
				return false
			case slices.Contains(shards, p):
				return true
			}
		}
		return !reportsForeign
	}
}

// chLoader loads reconciliations into ClickHouse through a BillLoader
// opened at the first load (ClickHouse may be down at start; a failed
// load is retried by the reconciliation). Safe for concurrent use.
type chLoader struct {
	cfg clickhouse.Config
	mu  sync.Mutex
	l   *clickhouse.BillLoader
}

func (c *chLoader) loader(ctx context.Context) (*clickhouse.BillLoader, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.l == nil {
		l, err := clickhouse.OpenBillLoader(ctx, c.cfg)
		if err != nil {
			return nil, err
		}
		c.l = l
	}
	return c.l, nil
}

// LoadBill implements reconcile.Loader.
func (c *chLoader) LoadBill(ctx context.Context, date string, rows []wxpay.TradeBillRow) error {
	l, err := c.loader(ctx)
	if err != nil {
		return err
	}
	return l.LoadTrades(ctx, date, rows)
}

// LoadDiscrepancies implements reconcile.Loader.
func (c *chLoader) LoadDiscrepancies(ctx context.Context, date string, ds []reconcile.Discrepancy) error {
	l, err := c.loader(ctx)
	if err != nil {
		return err
	}
	return l.LoadDiscrepancies(ctx, date, chDiscrepancies(ds))
}

// chDiscrepancies converts discrepancies to ClickHouse rows.
func chDiscrepancies(ds []reconcile.Discrepancy) []clickhouse.Discrepancy {
	out := make([]clickhouse.Discrepancy, len(ds))
	for i := range ds {
		d := &ds[i]
		out[i] = clickhouse.Discrepancy{Key: d.Key, Class: d.Class, Status: d.Status, OutTradeNo: d.OutTradeNo,
			OutRefundNo: d.OutRefundNo, TransactionID: d.TransactionID, OurState: d.OurState, OurAmount: d.OurAmount,
			WeChatState: d.WeChatState, WeChatAmount: d.WeChatAmount, Detail: d.Detail, Repair: d.Repair,
			FoundMs: d.FoundMs, UpdatedMs: d.UpdatedMs}
	}
	return out
}
