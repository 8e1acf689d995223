// Command wxpayd is the merchant-side WeChat Pay server: buyer login,
// flash-sale prepay, payment and refund notifications, order events.
// Configuration: environment variables or flags (docs/configuration.md).
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/wxpayd/wxpayd/actors"
	"github.com/wxpayd/wxpayd/actors/cluster"
	"github.com/wxpayd/wxpayd/actors/store"
	"github.com/wxpayd/wxpayd/ingress"
	"github.com/wxpayd/wxpayd/wxpay"
	"github.com/wxpayd/wxpayd/wxpay/client"
	"github.com/wxpayd/wxpayd/wxpay/openssl"
)

// Exit codes.
const (
	exitOK       = 0
	exitConfig   = 2 // a setting is missing or wrong
	exitStartup  = 3 // a component failed to start
	exitShutdown = 4 // shutdown did not complete cleanly
)

func main() {
	os.Exit(run(os.Args[1:], os.Getenv))
}

func run(args []string, getenv func(string) string) int {
	v, err := load(args, getenv)
	if err != nil {
		fmt.Fprintln(os.Stderr, "wxpayd:", err)
		return exitConfig
	}
	log := newLogger(v["WXPAYD_LOG_LEVEL"])
	app, err := build(v, log)
	if err != nil {
		log.Error("start-up failed", "err", err)
		var ce configError
		if errors.As(err, &ce) {
			return exitConfig
		}
		return exitStartup
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := app.run(ctx); err != nil {
		log.Error("shutdown incomplete", "err", err)
		return exitShutdown
	}
	log.Info("stopped")
	return exitOK
}

func newLogger(level string) *slog.Logger {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		l = slog.LevelInfo
	}
	return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
}

// configError marks start-up failures caused by a setting.
type configError struct{ err error }

func (e configError) Error() string { return e.err.Error() }
func (e configError) Unwrap() error { return e.err }

func cfgErr(format string, a ...any) error { return configError{fmt.Errorf(format, a...)} }

// app is the assembled server; run owns every goroutine it starts.
type app struct {
	log      *slog.Logger
	listen   string
	store    *store.Store
	sys      *actors.System
	node     *cluster.Node // nil: single node
	formWait time.Duration // cluster mode: how long /readyz waits for every shard
	srv      *ingress.Server
	pay      *client.Client
	login    *client.LoginClient
	refresh  *client.CertRefresher
	events   *events
	registry *prometheus.Registry
}

func build(v values, log *slog.Logger) (*app, error) {
	if err := v.required("WXPAY_APPID", "WXPAY_MCHID", "WXPAY_APP_SECRET_FILE", "WXPAY_MERCHANT_KEY_FILE",
		"WXPAY_MERCHANT_SERIAL", "WXPAY_APIV3_KEY_FILE", "WXPAY_NOTIFY_URL", "WXPAYD_DATA_DIR",
		"WXPAYD_ADMIN_TOKEN_FILE", "WXPAYD_SESSION_SECRET_FILE"); err != nil {
		return nil, configError{err}
	}
	ttl, err := v.duration("WXPAYD_ORDER_TTL")
	if err != nil {
		return nil, configError{err}
	}
	qps, err := v.integer("WXPAYD_PREPAY_QPS")
	if err != nil {
		return nil, configError{err}
	}
	if qps == 0 || qps < -1 {
		return nil, cfgErr("WXPAYD_PREPAY_QPS: %d must be positive or -1", qps)
	}
	if !strings.HasPrefix(v["WXPAY_NOTIFY_URL"], "https://") && !strings.HasPrefix(v["WXPAY_NOTIFY_URL"], "http://") ||
		strings.Contains(v["WXPAY_NOTIFY_URL"], "?") {
		return nil, cfgErr("WXPAY_NOTIFY_URL: must be an http(s) URL without a query")
	}

	// RSA backend: chosen once, logged.
	backend, err := openssl.Select(v["WXPAYD_RSA_BACKEND"], v["WXPAYD_OPENSSL_LIB"])
	if err != nil {
		return nil, cfgErr("WXPAYD_RSA_BACKEND: %w", err)
	}
	log.Info("rsa backend", "backend", backend.Name(), "openssl", openssl.Version())

	// Merchant identity.
	keyPEM, err := os.ReadFile(v["WXPAY_MERCHANT_KEY_FILE"])
	if err != nil {
		return nil, cfgErr("WXPAY_MERCHANT_KEY_FILE: %w", err)
	}
	rk, err := wxpay.ParsePrivateKeyPEM(keyPEM)
	if err != nil {
		return nil, cfgErr("WXPAY_MERCHANT_KEY_FILE: %w", err)
	}
	mk, err := backend.NewPrivateKey(rk)
	if err != nil {
		return nil, cfgErr("WXPAY_MERCHANT_KEY_FILE: %w", err)
	}
	signer, err := wxpay.NewSigner(v["WXPAY_MCHID"], v["WXPAY_MERCHANT_SERIAL"], mk)
	if err != nil {
		return nil, configError{err}
	}

	// WeChat's keys: public key and/or platform certificates.
	keys := wxpay.NewKeySet(backend)
	if v["WXPAY_PUBLIC_KEY_FILE"] != "" || v["WXPAY_PUBLIC_KEY_ID"] != "" {
		if err := v.required("WXPAY_PUBLIC_KEY_FILE", "WXPAY_PUBLIC_KEY_ID"); err != nil {
			return nil, configError{err}
		}
		b, err := os.ReadFile(v["WXPAY_PUBLIC_KEY_FILE"])
		if err != nil {
			return nil, cfgErr("WXPAY_PUBLIC_KEY_FILE: %w", err)
		}
		pk, err := wxpay.ParsePublicKeyPEM(b)
		if err != nil {
			return nil, cfgErr("WXPAY_PUBLIC_KEY_FILE: %w", err)
		}
		if err := keys.AddPublicKey(v["WXPAY_PUBLIC_KEY_ID"], pk); err != nil {
			return nil, cfgErr("WXPAY_PUBLIC_KEY_ID: %w", err)
		}
	}
	for _, f := range v.list("WXPAY_PLATFORM_CERT_FILES") {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, cfgErr("WXPAY_PLATFORM_CERT_FILES: %w", err)
		}
		c, err := wxpay.ParseCertificatePEM(b)
		if err != nil {
			return nil, cfgErr("WXPAY_PLATFORM_CERT_FILES: %s: %w", f, err)
		}
		if err := keys.AddCertificate(c); err != nil {
			return nil, cfgErr("WXPAY_PLATFORM_CERT_FILES: %s: %w", f, err)
		}
	}
	refreshEvery := time.Duration(0)
	switch r := v["WXPAY_CERT_REFRESH"]; r {
	case "", "false", "0":
	case "true", "1":
		refreshEvery = client.DefaultRefreshInterval
	default:
		if refreshEvery, err = v.duration("WXPAY_CERT_REFRESH"); err != nil {
			return nil, configError{err}
		}
	}
	if keys.Len() == 0 && refreshEvery == 0 {
		return nil, cfgErr("no WeChat Pay key: set WXPAY_PUBLIC_KEY_FILE and WXPAY_PUBLIC_KEY_ID, or WXPAY_PLATFORM_CERT_FILES")
	}
	apiV3Key, err := v.secret("WXPAY_APIV3_KEY_FILE", 32)
	if err != nil {
		return nil, configError{err}
	}
	aead, err := wxpay.NewAEAD(apiV3Key)
	if err != nil {
		return nil, cfgErr("WXPAY_APIV3_KEY_FILE: %w", err)
	}
	verifier := wxpay.NewVerifier(keys)
	var v2key *wxpay.V2Key
	if v["WXPAY_APIV2_KEY_FILE"] != "" {
		b, err := v.secret("WXPAY_APIV2_KEY_FILE", 1)
		if err != nil {
			return nil, configError{err}
		}
		if v2key, err = wxpay.NewV2Key(b); err != nil {
			return nil, cfgErr("WXPAY_APIV2_KEY_FILE: %w", err)
		}
	}
	appSecret, err := v.secret("WXPAY_APP_SECRET_FILE", 1)
	if err != nil {
		return nil, configError{err}
	}
	admin, err := v.secret("WXPAYD_ADMIN_TOKEN_FILE", 16)
	if err != nil {
		return nil, configError{err}
	}
	session, err := v.secret("WXPAYD_SESSION_SECRET_FILE", 32)
	if err != nil {
		return nil, configError{err}
	}

	a := &app{log: log, listen: v["WXPAYD_LISTEN"], registry: prometheus.NewRegistry()}
	a.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	// WeChat clients. Their calls are observed by the server's metrics,
	// which exist only once the server is built below.
	var observe atomic.Pointer[client.Observer]
	obs := client.WithObserver(func(op string, status int, d time.Duration, err error) {
		if f := observe.Load(); f != nil {
			(*f)(op, status, d, err)
		}
	})
	if a.pay, err = client.New(client.Config{BaseURL: v["WXPAY_API_BASE"]}, signer, verifier, obs); err != nil {
		return nil, cfgErr("WXPAY_API_BASE: %w", err)
	}
	if refreshEvery > 0 {
		if a.refresh, err = client.NewCertRefresher(a.pay, keys, aead, refreshEvery); err != nil {
			return nil, cfgErr("WXPAY_CERT_REFRESH: %w", err)
		}
		a.refresh.AllowBootstrap = keys.Len() == 0
	}
	if a.login, err = client.NewLoginClient(client.LoginConfig{
		BaseURL: v["WXPAY_LOGIN_BASE"], AppID: v["WXPAY_APPID"], AppSecret: string(appSecret),
	}); err != nil {
		return nil, cfgErr("WXPAY_LOGIN_BASE: %w", err)
	}

	// Durable state and actors.
	if err := os.MkdirAll(v["WXPAYD_DATA_DIR"], 0o700); err != nil {
		return nil, cfgErr("WXPAYD_DATA_DIR: %w", err)
	}
	if a.store, err = store.Open(v["WXPAYD_DATA_DIR"]+"/state", store.Options{}); err != nil {
		return nil, fmt.Errorf("WXPAYD_DATA_DIR: %w", err)
	}
	if a.sys, err = actors.New(actors.Config{
		AppID: v["WXPAY_APPID"], MchID: v["WXPAY_MCHID"], NotifyURL: v["WXPAY_NOTIFY_URL"], OrderTTL: ttl,
		PrepayQPS: qps,
	}, a.store, a.pay); err != nil {
		_ = a.store.Close()
		return nil, configError{err}
	}
	var router ingress.Router
	if a.node, err = newNode(v, a.sys, log); err != nil {
		_ = a.store.Close()
		return nil, err
	}
	if a.node != nil {
		router = a.node
		if a.formWait, err = v.duration("WXPAYD_CLUSTER_FORM_TIMEOUT"); err != nil {
			_ = a.store.Close()
			return nil, configError{err}
		}
	}
	if a.events, err = newEvents(v, a.store, a.registry, log); err != nil {
		_ = a.store.Close()
		return nil, err
	}
	if a.srv, err = ingress.New(ingress.Config{
		AppID: v["WXPAY_APPID"], MchID: v["WXPAY_MCHID"],
		SessionSecret: session, AdminToken: admin, ShardPrefix: v["WXPAYD_SHARD"], Logger: log,
	}, ingress.Deps{
		Actors: a.sys, Router: router, Signer: signer, Notify: wxpay.NewNotifyParser(verifier, aead), V2Key: v2key,
		Login: a.login, Registry: a.registry, Gatherer: a.registry,
	}); err != nil {
		_ = a.store.Close()
		return nil, configError{err}
	}
	f := client.Observer(a.srv.ObserveWeChat)
	observe.Store(&f)
	return a, nil
}

// run serves until ctx ends (SIGTERM), then shuts down in order.
func (a *app) run(ctx context.Context) error {
	ln, err := net.Listen("tcp", a.listen)
	if err != nil {
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

	bg, cancelBG := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	spawn := func(name string, fn func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(bg); err != nil && !errors.Is(err, context.Canceled) {
				errs <- fmt.Errorf("%s: %w", name, err)
			}
		}()
	}
	spawn("timers", a.sys.Run)
	if a.refresh != nil {
		spawn("certificates", a.refresh.Run)
	}
	a.events.start(spawn)
	served := make(chan error, 1)
	go func() { served <- a.srv.Serve(ln) }()
	if a.node == nil {
		a.srv.SetReady(true)
	} else {
		spawn("cluster formation", a.awaitCluster)
	}
	a.log.Info("serving", "listen", ln.Addr().String())

	select {
	case <-ctx.Done():
	case err := <-served:
		a.log.Error("server stopped", "err", err)
	case err := <-errs:
		a.log.Error("component failed", "err", err)
	}

	// Shutdown, in order. Each step has its own bound. (/readyz answers 503
	// from its first moment, even if awaitCluster marks the server ready.)
	var errsOut []error
	step := func(name string, d time.Duration, fn func(context.Context) error) {
		c, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		if err := fn(c); err != nil {
			errsOut = append(errsOut, fmt.Errorf("%s: %w", name, err))
		}
	}
	// 1. Stop the listener and let in-flight requests finish: every answer
	//    already promised is given.
	step("http", 15*time.Second, a.srv.Shutdown)
	// 1b. Leave the cluster: other nodes now answer 503 for this shard's
	//     orders (WeChat retries) until it is back.
	if a.node != nil {
		step("cluster", 10*time.Second, a.node.Close)
	}
	// 2. Drain the actors: messages in mailboxes are applied and made
	//    durable; background WeChat calls finish.
	step("actors", 20*time.Second, a.sys.Close)
	// 3. Flush the outbox to Kafka while we can, then stop the relay and
	//    the sink; what is not published stays in the outbox for next time.
	step("events", 10*time.Second, a.events.close)
	// 4. Stop the sink, the certificate refresher and the other background
	//    loops, then the embedded broker they may read from.
	cancelBG()
	wg.Wait()
	a.events.stopBroker()
	// 5. Close the WeChat clients and the store (flushes Pebble).
	step("wechat", 5*time.Second, a.pay.Shutdown)
	step("login", 5*time.Second, a.login.Shutdown)
	step("store", 10*time.Second, func(context.Context) error { return a.store.Close() })
	return errors.Join(errsOut...)
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
