package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pcluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/cluster/clusterproviders/automanaged"
	"github.com/asynkron/protoactor-go/cluster/identitylookup/disthash"
	"github.com/asynkron/protoactor-go/remote"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/wxpayd/wxpayd/actors"
	"github.com/wxpayd/wxpayd/actors/event"
	"github.com/wxpayd/wxpayd/actors/store"
)

// Config configures a node. Zero values take the defaults noted.
type Config struct {
	// Name is the cluster's name; members of other clusters are ignored
	// (default "wxpayd").
	Name string
	// Listen is this node's remote (gRPC) address, host:port; the host is
	// what the other nodes dial (required).
	Listen string
	// HealthPort is this node's automanaged health port. protoactor binds
	// it on 0.0.0.0 (required).
	HealthPort int
	// Members are every node's automanaged host:port, this one included
	// (required).
	Members []string
	// Shard is this node's shard (required, one of Shards).
	Shard string
	// Shards are every node's shard; SKU ownership hashes over them
	// (required).
	Shards []string
	// Timeout bounds a request to another node (default 3 s).
	Timeout time.Duration
	// Refresh is how often the automanaged provider polls the members
	// (default 1 s): a dead node leaves the topology within about this.
	Refresh time.Duration
	// ReconcileAfter is the age after which a hold for an order on another
	// node is checked against that order (default 2 min).
	ReconcileAfter time.Duration
	// MaxServing bounds the requests from other nodes this node serves at
	// once (default 4096); past it a request is answered "overloaded"
	// (actors.ErrOverloaded at the caller).
	MaxServing int
	// Logger receives this package's events (default slog.Default);
	// ProtoLogger receives protoactor's own (default: discarded).
	Logger      *slog.Logger
	ProtoLogger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.Name == "" {
		c.Name = "wxpayd"
	}
	if c.Timeout <= 0 {
		c.Timeout = 3 * time.Second
	}
	if c.Refresh <= 0 {
		c.Refresh = time.Second
	}
	if c.ReconcileAfter <= 0 {
		c.ReconcileAfter = 2 * time.Minute
	}
	if c.MaxServing <= 0 {
		c.MaxServing = 4096
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.ProtoLogger == nil {
		c.ProtoLogger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
}

// Validate reports the first invalid field.
func (c *Config) Validate() error {
	if _, _, err := splitHostPort(c.Listen); err != nil {
		return fmt.Errorf("cluster: Listen: %w", err)
	}
	switch {
	case c.HealthPort <= 0 || c.HealthPort > 65535:
		return errors.New("cluster: HealthPort must be a port number")
	case len(c.Members) == 0:
		return errors.New("cluster: Members must list every node's health host:port")
	case len(c.Shards) == 0:
		return errors.New("cluster: Shards must list every node's shard")
	}
	seen := map[string]bool{}
	for _, s := range c.Shards {
		if len(s) != 2 || seen[s] {
			return fmt.Errorf("cluster: Shards: %q is not a distinct 2-character shard", s)
		}
		seen[s] = true
	}
	if !seen[c.Shard] {
		return fmt.Errorf("cluster: Shard %q is not in Shards", c.Shard)
	}
	return nil
}

func splitHostPort(addr string) (string, int, error) {
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	n, err := strconv.Atoi(p)
	if err != nil || n <= 0 || n > 65535 || h == "" {
		return "", 0, fmt.Errorf("%q is not host:port", addr)
	}
	return h, n, nil
}

// Kind is the cluster kind that only shard's node registers.
func Kind(shard string) string { return "shard-" + shard }

// Node is this process's cluster member and the cluster-mode
// ingress.Router. Safe for concurrent use; Close stops it.
type Node struct {
	cfg     Config
	sys     *actors.System
	as      *actor.ActorSystem
	c       *pcluster.Cluster
	alive   atomic.Pointer[map[string]bool] // kinds in the current topology
	topo    chan struct{}                   // signalled on each topology change
	stock   *settler
	serving chan struct{} // a slot per request from another node being served
	// mu orders spawn against Close: once stopping is set no goroutine
	// joins wg, so Close's wait ends.
	mu       sync.Mutex
	stopping bool
	wg       sync.WaitGroup // every goroutine the node starts
	quit     chan struct{}  // closed by Close: the loops stop
	done     chan struct{}  // closed when Close's shutdown has finished
	closed   atomic.Bool
	started  atomic.Bool
}

// New builds a node over the local actor system. Start joins the cluster.
func New(cfg Config, sys *actors.System) (*Node, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, sys: sys, topo: make(chan struct{}, 1), quit: make(chan struct{}), done: make(chan struct{}),
		serving: make(chan struct{}, cfg.MaxServing)}
	empty := map[string]bool{}
	n.alive.Store(&empty)
	n.stock = newSettler(n)
	sys.Inventory().SetStockRemote(n)
	return n, nil
}

// Start joins the cluster: remote on Listen, the automanaged health server
// on HealthPort, the shard's kind. It does not wait for the other members.
func (n *Node) Start() error {
	host, port, _ := splitHostPort(n.cfg.Listen)
	pl := n.cfg.ProtoLogger
	n.as = actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return pl }))
	props := actor.PropsFromProducer(func() actor.Actor { return &grain{n: n} })
	provider := automanaged.NewWithConfig(n.cfg.Refresh, n.cfg.HealthPort, n.cfg.Members...)
	rc := remote.Configure(host, port)
	cc := pcluster.Configure(n.cfg.Name, provider, disthash.New(), rc,
		pcluster.WithKinds(pcluster.NewKind(Kind(n.cfg.Shard), props)),
		pcluster.WithRequestTimeout(n.cfg.Timeout))
	n.c = pcluster.New(n.as, cc)
	n.as.EventStream.Subscribe(func(ev any) {
		if t, ok := ev.(*pcluster.ClusterTopology); ok {
			n.onTopology(t)
		}
	})
	n.c.StartMember()
	n.started.Store(true)
	n.spawn(n.stock.run)
	n.spawn(n.reconcile)
	return nil
}

// spawn runs fn on a goroutine Close waits for; false (fn not run) once
// Close has begun.
func (n *Node) spawn(fn func()) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.stopping {
		return false
	}
	n.wg.Add(1)
	go func() { defer n.wg.Done(); fn() }()
	return true
}

func (n *Node) onTopology(t *pcluster.ClusterTopology) {
	m := map[string]bool{}
	for _, mem := range t.Members {
		for _, k := range mem.Kinds {
			m[k] = true
		}
	}
	old := n.alive.Swap(&m)
	for k := range m {
		if !(*old)[k] {
			n.cfg.Logger.Info("cluster: shard joined", "kind", k)
		}
	}
	for k := range *old {
		if !m[k] {
			n.cfg.Logger.Warn("cluster: shard left", "kind", k)
		}
	}
	select {
	case n.topo <- struct{}{}:
	default:
	}
}

// Alive reports whether shard's node is in the current topology.
func (n *Node) Alive(shard string) bool {
	if shard == n.cfg.Shard {
		return true
	}
	return (*n.alive.Load())[Kind(shard)]
}

// Missing returns the shards not in the current topology.
func (n *Node) Missing() []string {
	var out []string
	for _, s := range n.cfg.Shards {
		if !n.Alive(s) {
			out = append(out, s)
		}
	}
	return out
}

// WaitFor waits until every shard is in the topology or ctx ends.
func (n *Node) WaitFor(ctx context.Context) error {
	for {
		if len(n.Missing()) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-n.topo:
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Close leaves the cluster: stops the settler (unsent settlements are
// reconciled later by their SKU's owner), waits for the requests in
// progress, to and from other nodes (each bounded by Timeout), and shuts
// protoactor down. When ctx ends first Close returns its error and the
// shutdown goes on; Done is closed when it has finished.
func (n *Node) Close(ctx context.Context) error {
	if !n.closed.CompareAndSwap(false, true) || !n.started.Load() {
		return nil
	}
	n.mu.Lock()
	n.stopping = true
	n.mu.Unlock()
	close(n.quit)
	go func() { // the node's last goroutine: it ends with the shutdown it waits for
		n.wg.Wait()
		n.c.Shutdown(true)
		close(n.done)
	}()
	select {
	case <-n.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("cluster: close: %w", ctx.Err())
	}
}

// Done is closed once a Close has shut the node down.
func (n *Node) Done() <-chan struct{} { return n.done }

// ShardOf returns the shard owning out_trade_no (its first two characters).
func ShardOf(otn string) string {
	if len(otn) < 2 {
		return ""
	}
	return otn[:2]
}

// OwnerOf returns the shard owning sku: rendezvous hashing over Shards, so
// adding a shard moves only the SKUs it wins.
func (n *Node) OwnerOf(sku string) string { return Owner(sku, n.cfg.Shards) }

// Owner returns the shard of shards that owns sku (rendezvous hashing; the
// list's order does not matter).
func Owner(sku string, shards []string) string {
	var best string
	var bestScore uint64
	k := hash64(sku)
	for _, s := range shards {
		if v := mix64(k ^ hash64(s)); best == "" || v > bestScore {
			best, bestScore = s, v
		}
	}
	return best
}

func hash64(s string) uint64 {
	h := fnv.New64a()
	_, _ = h.Write([]byte(s))
	return h.Sum64()
}

// mix64 is splitmix64's finaliser: FNV alone scores similar keys alike.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	return x ^ x>>31
}

// Owns reports whether this node owns sku (actors.StockRemote).
func (n *Node) Owns(sku string) bool { return n.OwnerOf(sku) == n.cfg.Shard }

// call sends an envelope to shard's node and waits for its answer, at most
// Timeout or ctx's deadline.
func (n *Node) call(ctx context.Context, shard, key string, e envelope) (answer, error) {
	if n.closed.Load() || !n.started.Load() {
		return answer{}, actors.ErrStopped
	}
	if !n.Alive(shard) {
		return answer{}, fmt.Errorf("shard %s: not in the cluster: %w", shard, actors.ErrUnavailable)
	}
	timeout := n.cfg.Timeout
	if d, ok := ctx.Deadline(); ok && time.Until(d) < timeout {
		timeout = time.Until(d)
	}
	if timeout <= 0 {
		return answer{}, actors.ErrTimeout
	}
	b, err := json.Marshal(e)
	if err != nil {
		return answer{}, fmt.Errorf("cluster: encode: %w", err)
	}
	// A few identities per shard spread the grain mailboxes.
	h := fnv.New32a()
	_, _ = h.Write([]byte(key))
	identity := strconv.Itoa(int(h.Sum32() % 8))
	type result struct {
		v   any
		err error
	}
	ch := make(chan result, 1)
	if !n.spawn(func() {
		v, err := n.c.Request(identity, Kind(shard), &wrapperspb.BytesValue{Value: b},
			pcluster.WithTimeout(timeout), pcluster.WithRetryCount(2))
		ch <- result{v, err}
	}) {
		return answer{}, actors.ErrStopped
	}
	t := time.NewTimer(timeout + 100*time.Millisecond)
	defer t.Stop()
	var res result
	select {
	case res = <-ch:
	case <-t.C:
		return answer{}, fmt.Errorf("shard %s: no answer in %s: %w: %w", shard, timeout, actors.ErrUnavailable, actors.ErrTimeout)
	}
	if res.err != nil {
		return answer{}, fmt.Errorf("shard %s: %v: %w", shard, res.err, actors.ErrUnavailable)
	}
	bv, ok := res.v.(*wrapperspb.BytesValue)
	if !ok {
		return answer{}, fmt.Errorf("shard %s: unexpected answer %T: %w", shard, res.v, actors.ErrUnavailable)
	}
	var a answer
	if err := json.Unmarshal(bv.Value, &a); err != nil {
		return answer{}, fmt.Errorf("cluster: decode answer: %w", err)
	}
	return a, nil
}

// Request implements ingress.Router.
func (n *Node) Request(ctx context.Context, msg actors.OrderMessage) (actors.Reply, error) {
	otn := orderKey(msg)
	shard := ShardOf(otn)
	if shard == n.cfg.Shard || !n.known(shard) {
		return n.sys.Request(ctx, msg) // ours, or no such shard: the local answer is "not found"
	}
	e, err := encodeOrder(msg)
	if err != nil {
		return actors.Reply{}, err
	}
	a, err := n.call(ctx, shard, otn, e)
	if err != nil {
		return actors.Reply{}, err
	}
	return a.reply(shard)
}

func (n *Node) known(shard string) bool {
	for _, s := range n.cfg.Shards {
		if s == shard {
			return true
		}
	}
	return false
}

func orderKey(msg actors.OrderMessage) string {
	switch m := msg.(type) {
	case *actors.Prepay:
		return m.OutTradeNo
	case *actors.Get:
		return m.OutTradeNo
	case *actors.PaymentNotified:
		return m.Tx.OutTradeNo
	case *actors.RefundNotified:
		return m.Notice.OutTradeNo
	case *actors.StartRefund:
		return m.OutTradeNo
	case *actors.ApplyAbnormalRefund:
		return m.OutTradeNo
	case *actors.Reconcile:
		return m.OutTradeNo
	}
	return ""
}

func (n *Node) stockCall(ctx context.Context, t string, r stockReq) (answer, string, error) {
	owner := n.OwnerOf(r.SKU)
	b, _ := json.Marshal(r)
	a, err := n.call(ctx, owner, r.SKU, envelope{Type: t, Payload: b})
	if err == nil {
		err = codeErr(owner, a.Err)
	}
	return a, owner, err
}

// Reserve implements actors.StockRemote: at the SKU's owner.
func (n *Node) Reserve(ctx context.Context, sku, otn, openid string, qty int64, fast bool) (actors.ReserveResult, error) {
	if n.Owns(sku) {
		inv := n.sys.Inventory()
		if ShardOf(otn) == n.cfg.Shard {
			return inv.Reserve(ctx, sku, otn, openid, qty, fast)
		}
		return inv.ReserveDurable(ctx, sku, otn, openid, qty, fast)
	}
	a, _, err := n.stockCall(ctx, tReserve, stockReq{SKU: sku, OTN: otn, OpenID: openid, Qty: qty, Fast: fast})
	if err != nil || a.Reserve == nil {
		return actors.ReserveResult{}, err
	}
	return *a.Reserve, nil
}

// Release implements actors.StockRemote: the order actors call it for the
// SKUs another node owns; the release reaches the owner durably.
func (n *Node) Release(sku, otn string) {
	n.stock.add(stockReq{SKU: sku, OTN: otn})
}

// SoldOut implements ingress.Router: the lock-free check of a SKU this
// node owns; false for the others (their owner checks when the order
// actor reserves).
func (n *Node) SoldOut(sku string, qty int64) bool {
	if !n.Owns(sku) {
		return false
	}
	left, ok := n.sys.Inventory().Left(sku)
	return ok && left < qty
}

// Commit implements actors.StockRemote.
func (n *Node) Commit(sku, otn, openid string, qty int64) {
	n.stock.add(stockReq{SKU: sku, OTN: otn, OpenID: openid, Qty: qty, Sold: true})
}

// PutSKU implements ingress.Router: at the SKU's owner.
func (n *Node) PutSKU(ctx context.Context, k store.SKU) (actors.SKUView, error) {
	if n.Owns(k.SKU) {
		return n.sys.Inventory().Put(ctx, k)
	}
	b, _ := json.Marshal(k)
	owner := n.OwnerOf(k.SKU)
	a, err := n.call(ctx, owner, k.SKU, envelope{Type: tPutSKU, Payload: b})
	return skuAnswer(owner, a, err)
}

// GetSKU implements ingress.Router: at the SKU's owner.
func (n *Node) GetSKU(ctx context.Context, sku string) (actors.SKUView, error) {
	if n.Owns(sku) {
		return n.sys.Inventory().Get(ctx, sku)
	}
	b, _ := json.Marshal(sku)
	owner := n.OwnerOf(sku)
	a, err := n.call(ctx, owner, sku, envelope{Type: tGetSKU, Payload: b})
	return skuAnswer(owner, a, err)
}

func skuAnswer(owner string, a answer, err error) (actors.SKUView, error) {
	if err == nil {
		err = codeErr(owner, a.Err)
	}
	if err != nil || a.SKU == nil {
		return actors.SKUView{}, err
	}
	return *a.SKU, nil
}

// History implements ingress.Router: from the order's node.
func (n *Node) History(ctx context.Context, otn string) ([]event.Event, error) {
	shard := ShardOf(otn)
	if shard == n.cfg.Shard || !n.known(shard) {
		return n.sys.Store().History(otn)
	}
	b, _ := json.Marshal(otn)
	a, err := n.call(ctx, shard, otn, envelope{Type: tHistory, Payload: b})
	if err == nil {
		err = codeErr(shard, a.Err)
	}
	return a.History, err
}

// grain is the shard kind's actor: it answers each request from its own
// goroutine so a slow order does not hold the others.
type grain struct{ n *Node }

func (g *grain) Receive(ctx actor.Context) {
	m, ok := ctx.Message().(*wrapperspb.BytesValue)
	if !ok {
		return
	}
	sender := ctx.Sender()
	if sender == nil {
		return
	}
	n := g.n
	b := m.Value
	reply := func(a answer) {
		out, _ := json.Marshal(a)
		n.as.Root.Send(sender, &wrapperspb.BytesValue{Value: out})
	}
	select {
	case n.serving <- struct{}{}:
	default:
		reply(answer{Err: errCode(actors.ErrOverloaded)})
		return
	}
	if !n.spawn(func() {
		defer func() { <-n.serving }()
		reply(n.serve(b))
	}) {
		<-n.serving
		reply(answer{Err: errCode(actors.ErrStopped)})
	}
}

// serve applies one envelope from another node to the local system.
func (n *Node) serve(b []byte) answer {
	var e envelope
	if err := json.Unmarshal(b, &e); err != nil {
		return answer{Err: "internal: bad envelope"}
	}
	ctx, cancel := context.WithTimeout(context.Background(), n.cfg.Timeout)
	defer cancel()
	if m, err := decodeOrder(e); m != nil || err != nil {
		if err != nil {
			return answer{Err: "internal: " + err.Error()}
		}
		return replyAnswer(n.sys.Request(ctx, m))
	}
	inv := n.sys.Inventory()
	switch e.Type {
	case tReserve, tSettle:
		var r stockReq
		if err := json.Unmarshal(e.Payload, &r); err != nil {
			return answer{Err: "internal: " + err.Error()}
		}
		if !n.Owns(r.SKU) {
			return answer{Err: "internal: not the owner of " + r.SKU}
		}
		if e.Type == tSettle {
			return answer{Err: errCode(inv.Settle(ctx, r.SKU, r.OTN, r.OpenID, r.Qty, r.Sold))}
		}
		res, err := inv.ReserveDurable(ctx, r.SKU, r.OTN, r.OpenID, r.Qty, r.Fast)
		return answer{Err: errCode(err), Reserve: &res}
	case tPutSKU:
		var k store.SKU
		if err := json.Unmarshal(e.Payload, &k); err != nil {
			return answer{Err: "internal: " + err.Error()}
		}
		v, err := inv.Put(ctx, k)
		return answer{Err: errCode(err), SKU: &v}
	case tGetSKU:
		var sku string
		_ = json.Unmarshal(e.Payload, &sku)
		v, err := inv.Get(ctx, sku)
		return answer{Err: errCode(err), SKU: &v}
	case tHistory:
		var otn string
		_ = json.Unmarshal(e.Payload, &otn)
		h, err := n.sys.Store().History(otn)
		return answer{Err: errCode(err), History: h}
	}
	return answer{Err: "internal: unknown message " + e.Type}
}
