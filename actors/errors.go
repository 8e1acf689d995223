package actors

import "errors"

// Errors callers branch on.
var (
	// ErrOverloaded: the actors already hold as many requests as allowed.
	// Answer 429/503; never queue without bound.
	ErrOverloaded = errors.New("actors: overloaded")
	// ErrTimeout: the actor did not answer in time. The message may still
	// be applied; callers must treat the outcome as unknown.
	ErrTimeout = errors.New("actors: request timed out")
	// ErrStopped: the system is shutting down.
	ErrStopped = errors.New("actors: stopped")
	// ErrStore: the durable write failed; nothing was acknowledged.
	ErrStore = errors.New("actors: store failed")
	// ErrUnknownSKU: no catalogue entry for the SKU.
	ErrUnknownSKU = errors.New("actors: unknown sku")
	// ErrUnavailable: the node owning the order's shard or the SKU is not
	// reachable (cluster mode). Nothing is known to have changed; answer
	// 503 (WeChat retries notifications).
	ErrUnavailable = errors.New("actors: owning node unavailable")
)
