// Package actors is wxpayd's core: one order actor per out_trade_no runs
// that order's whole life, one SKU actor per SKU owns its stock, and a
// durable store (package store) keeps both.
//
// An order's life, all in its actor (order.go, prepay.go): a buyer's
// Prepay reserves stock, takes a token of the merchant's prepay budget,
// commits CREATED, calls WeChat and answers when the outcome is committed
// (a shop's Checkout, checkout.go, does the same without stock);
// notifications (PaymentNotified, RefundNotified), admin requests
// (StartRefund, ApplyAbnormalRefund) and the order's timer (Tick: query,
// close, refund query) are applied the same way. Each message runs through
// the state machine (machine.go), a pure function of the record, the
// message and Env, whose outcome is committed in one durable write
// (record, events, reservation) before anything is answered, stock moves,
// or a WeChat call starts. WeChat calls run on bounded executors (prepay
// apart from the background calls); their results come back as messages.
// Nothing the order's future depends on lives only in memory: a restart
// or passivation loses no schedule (Queries, NextTickMs) and no state.
//
// Ownership:
//   - an order's record, history and reservation writes: its order actor;
//   - a SKU's counts: its SKU actor (inventory.go), rebuilt from the
//     durable reservations at load; its published count (skuHandle.left)
//     is the only state read without a message, by the sold-out fast path;
//   - routing and passivation of order actors: the managers (manager.go),
//     one per partition;
//   - timers: the timer wheel (timers.go), which only sends Tick messages.
//
// Locks: Inventory.mu guards the SKU registry; it is held to look up or
// load an entry, never while waiting for an actor's answer (but in stop,
// at shutdown). budget.mu and the executors' mu are leaves. Actors hold no
// locks across messages. An order actor may wait for its SKU actor (a
// reservation), never the reverse, so waits cannot cycle.
//
// System is safe for concurrent use; Request, Inventory's methods and the
// message types are the API. Messages are immutable once sent.
package actors
