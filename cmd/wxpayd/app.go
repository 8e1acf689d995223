package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/wxpayd/wxpayd/actors"
	"github.com/wxpayd/wxpayd/actors/cluster"
	"github.com/wxpayd/wxpayd/actors/reconcile"
	"github.com/wxpayd/wxpayd/actors/store"
	"github.com/wxpayd/wxpayd/ingress"
	"github.com/wxpayd/wxpayd/sink/webhook"
	"github.com/wxpayd/wxpayd/wxpay/client"
)

// requiredSettings have no default and must be set for every start.
var requiredSettings = []string{"WXPAY_APPID", "WXPAY_MCHID", "WXPAY_APP_SECRET_FILE", "WXPAY_MERCHANT_KEY_FILE",
	"WXPAY_MERCHANT_SERIAL", "WXPAY_APIV3_KEY_FILE", "WXPAY_NOTIFY_URL", "WXPAYD_DATA_DIR",
	"WXPAYD_ADMIN_TOKEN_FILE", "WXPAYD_SESSION_SECRET_FILE"}

// app is the assembled server. Every goroutine it starts runs through
// loops and is waited for by shutdown.
type app struct {
	log      *slog.Logger
	listen   string
	registry *prometheus.Registry

	// The WeChat clients (newWeChatClients): pay on APIv3, pay2 on APIv2
	// (v2.go); the other is nil.
	pay     *client.Client
	pay2    *client.V2Client
	login   *client.LoginClient
	refresh *client.CertRefresher // nil: WXPAY_CERT_REFRESH is off

	// The durable state and what runs over it (openState).
	store    *store.Store
	sys      *actors.System
	node     *cluster.Node // nil: single node
	formWait time.Duration // cluster mode: how long /readyz waits for every shard
	events   *events
	hooks    *webhook.Deliverer // nil: WXPAYD_WEBHOOK_URL is not set
	recon    *reconcile.Reconciler
	srv      *ingress.Server

	// Set by start.
	ln    net.Listener
	loops *loops
}

// newApp checks the settings, reads the identity and builds every
// component, in that order: nothing is opened until every key and secret
// has been read. If a step fails, what the earlier steps opened is closed
// (release) before newApp returns. An error caused by a setting is a
// configError.
func newApp(v values, log *slog.Logger) (*app, error) {
	if err := resolveAPI(v); err != nil {
		return nil, err
	}
	if err := v.required(requiredFor(v)...); err != nil {
		return nil, configError{err}
	}
	orders, err := orderConfig(v)
	if err != nil {
		return nil, err
	}
	id, err := loadIdentity(v, log)
	if err != nil {
		return nil, err
	}
	hooks, err := readWebhookSettings(v, log)
	if err != nil {
		return nil, err
	}

	a := &app{log: log, listen: v["WXPAYD_LISTEN"], registry: prometheus.NewRegistry()}
	a.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	built := false
	defer func() {
		if !built {
			a.release()
		}
	}()
	if err := a.newWeChatClients(v, id); err != nil {
		return nil, err
	}
	if err := a.openState(v, id, orders, hooks); err != nil {
		return nil, err
	}
	built = true
	return a, nil
}

// orderConfig checks the order settings (WXPAYD_ORDER_TTL,
// WXPAYD_PREPAY_QPS, WXPAY_NOTIFY_URL, WXPAYD_QUERY_AFTER,
// WXPAYD_CLOSE_GRACE, WXPAYD_PREPAY_TIMEOUT, WXPAYD_CALL_TIMEOUT) and
// returns the actors' configuration.
func orderConfig(v values) (actors.Config, error) {
	ttl, err := v.duration("WXPAYD_ORDER_TTL")
	if err != nil {
		return actors.Config{}, configError{err}
	}
	var timing [4]time.Duration
	for i, name := range []string{"WXPAYD_QUERY_AFTER", "WXPAYD_CLOSE_GRACE", "WXPAYD_PREPAY_TIMEOUT", "WXPAYD_CALL_TIMEOUT"} {
		if timing[i], err = v.duration(name); err != nil {
			return actors.Config{}, configError{err}
		}
	}
	if timing[2] > 30*time.Second || timing[3] > 60*time.Second {
		return actors.Config{}, cfgErr("WXPAYD_PREPAY_TIMEOUT (at most 30s) or WXPAYD_CALL_TIMEOUT (at most 60s) is too long: a buyer or a timer would wait on it")
	}
	qps, err := v.integer("WXPAYD_PREPAY_QPS")
	if err != nil {
		return actors.Config{}, configError{err}
	}
	if qps == 0 || qps < -1 {
		return actors.Config{}, cfgErr("WXPAYD_PREPAY_QPS: %d must be positive or -1", qps)
	}
	notify := v["WXPAY_NOTIFY_URL"]
	if !strings.HasPrefix(notify, "https://") && !strings.HasPrefix(notify, "http://") || strings.Contains(notify, "?") {
		return actors.Config{}, cfgErr("WXPAY_NOTIFY_URL: must be an http(s) URL without a query")
	}
	return actors.Config{
		AppID: v["WXPAY_APPID"], MchID: v["WXPAY_MCHID"], NotifyURL: notify, OrderTTL: ttl, PrepayQPS: qps,
		QueryAfter: timing[0], CloseGrace: timing[1], PrepayTimeout: timing[2], CallTimeout: timing[3],
	}, nil
}

// newWeChatClients builds the WeChat Pay client, the certificate refresher
// (when WXPAY_CERT_REFRESH is on) and the login client. Every WeChat Pay
// call, from the ingress or the order timers, is counted by the
// wxpayd_wechat_* metrics in a.registry.
func (a *app) newWeChatClients(v values, id *identity) error {
	wm, err := ingress.NewWeChatMetrics(a.registry)
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	a.logAPI(v, id)
	if id.v2 != nil {
		if a.pay2, err = newV2Client(v, id, wm.Observe); err != nil {
			return err
		}
	} else if a.pay, err = client.New(client.Config{BaseURL: v["WXPAY_API_BASE"]}, id.signer, id.verifier,
		client.WithObserver(wm.Observe)); err != nil {
		return cfgErr("WXPAY_API_BASE: %w", err)
	}
	if id.refreshEvery > 0 {
		if a.refresh, err = client.NewCertRefresher(a.pay, id.keys, id.aead, id.refreshEvery); err != nil {
			return cfgErr("WXPAY_CERT_REFRESH: %w", err)
		}
		a.refresh.AllowBootstrap = id.keys.Len() == 0
	}
	if a.login, err = client.NewLoginClient(client.LoginConfig{
		BaseURL: v["WXPAY_LOGIN_BASE"], AppID: v["WXPAY_APPID"], AppSecret: string(id.appSecret),
	}); err != nil {
		return cfgErr("WXPAY_LOGIN_BASE: %w", err)
	}
	return nil
}

// openState opens the durable state in WXPAYD_DATA_DIR and builds what
// runs over it: the actors, the cluster member (cluster mode), the event
// pipeline, the webhook deliverer (hooks; nil: none) and the HTTP server.
// It starts the actors' workers and the embedded broker; nothing listens
// yet.
func (a *app) openState(v values, id *identity, orders actors.Config, hooks *webhookSettings) error {
	if err := os.MkdirAll(v["WXPAYD_DATA_DIR"], 0o700); err != nil {
		return cfgErr("WXPAYD_DATA_DIR: %w", err)
	}
	var err error
	if a.store, err = store.Open(v["WXPAYD_DATA_DIR"]+"/state", store.Options{Webhook: hooks.match()}); err != nil {
		return fmt.Errorf("WXPAYD_DATA_DIR: %w", err)
	}
	if a.sys, err = actors.New(orders, a.store, a.wechat()); err != nil {
		return configError{err}
	}
	var router ingress.Router // nil: ingress routes to a.sys (single node)
	if a.node, err = newNode(v, a.sys, a.log); err != nil {
		return err
	}
	if a.node != nil {
		router = a.node
		if a.formWait, err = v.duration("WXPAYD_CLUSTER_FORM_TIMEOUT"); err != nil {
			return configError{err}
		}
	}
	if a.events, err = newEvents(v, a.store, a.registry, a.log); err != nil {
		return err
	}
	if a.hooks, err = hooks.deliverer(a.store, a.registry); err != nil {
		return err
	}
	if a.recon, err = a.newReconciler(v); err != nil {
		return err
	}
	proxies, err := v.prefixes("WXPAYD_TRUSTED_PROXIES")
	if err != nil {
		return err
	}
	if a.srv, err = ingress.New(ingress.Config{
		AppID: v["WXPAY_APPID"], MchID: v["WXPAY_MCHID"],
		SessionSecret: id.sessionSecret, AdminToken: id.adminToken, ShopToken: id.shopToken, ShardPrefix: v["WXPAYD_SHARD"], Logger: a.log,
		CORSOrigins: v.list("WXPAYD_CORS_ORIGINS"), TrustedProxies: proxies,
	}, ingress.Deps{
		Actors: a.sys, Router: router, Signer: id.paySigner(), Notify: id.notifyParser(),
		V2Key: id.v2key, Login: a.login, Registry: a.registry, Gatherer: a.registry,
		Webhooks: a.webhooks(), Reconciler: a.recon,
	}); err != nil {
		return configError{err}
	}
	return nil
}

// release closes, newest first, what newApp and start opened, for a start
// that failed before serving: the listener, the cluster member, the actors,
// the embedded broker, the WeChat clients and the store. Parts not built
// are nil and skipped. It is the only cleanup of a failed start.
func (a *app) release() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var errs []error
	if a.ln != nil {
		errs = append(errs, a.ln.Close())
	}
	if a.node != nil {
		errs = append(errs, a.node.Close(ctx))
	}
	if a.sys != nil {
		errs = append(errs, a.sys.Close(ctx))
	}
	if a.events != nil {
		a.events.stopBroker()
	}
	errs = append(errs, a.shutdownWeChat(ctx))
	if a.login != nil {
		errs = append(errs, a.login.Close(ctx))
	}
	if a.store != nil {
		errs = append(errs, a.store.Close())
	}
	if err := errors.Join(errs...); err != nil {
		a.log.Warn("closing after a failed start", "err", err)
	}
}

// start listens on WXPAYD_LISTEN, resumes the order timers, starts the
// cluster member, then every background loop, and serves. If a step
// fails, what is open is closed (release) and nothing runs.
func (a *app) start() (err error) {
	defer func() {
		if err != nil {
			a.release()
		}
	}()
	if a.ln, err = net.Listen("tcp", a.listen); err != nil {
		return fmt.Errorf("WXPAYD_LISTEN: %w", err)
	}
	n, err := a.sys.Recover()
	if err != nil {
		return fmt.Errorf("recover timers: %w", err)
	}
	a.log.Info("recovered", "active_orders", n, "outbox_backlog", a.store.OutboxBacklog())
	if a.node != nil {
		if err := a.node.Start(); err != nil {
			return fmt.Errorf("cluster: %w", err)
		}
		a.log.Info("cluster member started")
	}

	a.loops = newLoops(a.log)
	a.loops.spawn("timers", a.sys.Run)
	if a.refresh != nil {
		a.loops.spawn("certificates", a.refresh.Run)
	}
	a.events.start(a.loops.spawn)
	if a.hooks != nil {
		a.loops.spawn("webhooks", a.hooks.Run)
	}
	a.loops.spawn("reconcile", a.recon.Run)
	a.loops.spawn("http", a.serveHTTP)
	if a.node == nil {
		a.srv.SetReady(true)
	} else {
		a.loops.spawn("cluster formation", a.awaitCluster)
	}
	a.log.Info("serving", "listen", a.ln.Addr().String())
	return nil
}

// serveHTTP serves a.ln until shutdown stops the server. Serving that ends
// before the shutdown began is a failure.
func (a *app) serveHTTP(context.Context) error {
	if err := a.srv.Run(a.ln); err != nil {
		return err
	}
	if !a.loops.isStopping() {
		return errors.New("server stopped")
	}
	return nil
}

// serve waits until ctx ends (SIGTERM, SIGINT) or a background loop fails.
func (a *app) serve(ctx context.Context) {
	select {
	case <-ctx.Done():
	case <-a.loops.failed:
	}
}

// failure is the first background loop's failure before the shutdown
// began, nil if there was none.
func (a *app) failure() error { return a.loops.err() }

// shutdown stops wxpayd in order, each step within its own bound, and
// returns what did not stop cleanly: a step past its bound or failing,
// or a background loop failing while it stopped. (/readyz answers 503
// from its first moment, even if awaitCluster marks the server ready.)
func (a *app) shutdown() error {
	a.loops.beginStop()
	var errs []error
	step := func(name string, d time.Duration, fn func(context.Context) error) {
		c, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		if err := fn(c); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	}
	// 1. Stop the listener and let in-flight requests finish: every answer
	//    already promised is given.
	step("http", 15*time.Second, a.srv.Close)
	// 1b. Leave the cluster: other nodes now answer 503 for this shard's
	//     orders (WeChat retries) until it is back.
	if a.node != nil {
		step("cluster", 10*time.Second, a.node.Close)
	}
	// 1c. Stop the reconciliation before the actors it sends repairs to:
	//     a run in progress stops where it is and resumes at the next start.
	step("reconcile", 10*time.Second, a.recon.Close)
	// 2. Drain the actors: messages in mailboxes are applied and made
	//    durable; background WeChat calls finish.
	step("actors", 20*time.Second, a.sys.Close)
	// 3. Flush the outbox to Kafka while we can, then stop the relay and
	//    the sink; what is not published stays in the outbox for next time.
	step("events", 10*time.Second, a.events.close)
	// 3b. Stop webhook deliveries: attempts in flight may finish within
	//     5 s; what is not delivered stays queued for the next start.
	if a.hooks != nil {
		step("webhooks", 5*time.Second, a.hooks.Close)
	}
	// 4. Stop the sink, the certificate refresher and the other background
	//    loops, then the embedded broker they may read from.
	if err := a.loops.stop(); err != nil {
		errs = append(errs, err)
	}
	a.events.stopBroker()
	// 5. Close the WeChat clients and the store (flushes Pebble).
	step("wechat", 5*time.Second, a.shutdownWeChat)
	step("login", 5*time.Second, a.login.Close)
	step("store", 10*time.Second, func(context.Context) error { return a.store.Close() })
	return errors.Join(errs...)
}

// awaitCluster marks the server ready once every shard has joined, or when
// formWait has passed (then the missing shards' orders and SKUs answer 503
// SHARD_UNAVAILABLE until they join). Without it a node that starts with
// the others would take traffic it can only answer with 503 for its first
// seconds; with it, a node whose peers are all down still serves its own
// shard after the wait. Once ready, a node stays ready when peers leave.
func (a *app) awaitCluster(ctx context.Context) error {
	c, cancel := context.WithTimeout(ctx, a.formWait)
	defer cancel()
	err := a.node.WaitFor(c)
	if ctx.Err() != nil {
		return nil // shutting down
	}
	if err != nil {
		a.log.Warn("cluster incomplete after the formation timeout: ready anyway", "missing", a.node.Missing(), "waited", a.formWait)
	} else {
		a.log.Info("cluster formed")
	}
	a.srv.SetReady(true)
	return nil
}
