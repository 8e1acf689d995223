package main

import (
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/wxpayd/wxpayd/actors/event"
	"github.com/wxpayd/wxpayd/actors/store"
	"github.com/wxpayd/wxpayd/ingress"
	"github.com/wxpayd/wxpayd/sink/webhook"
)

// webhookSettings are the shop's webhook endpoint (WXPAYD_WEBHOOK_*),
// read before the store opens: the store queues the subscribed events in
// each transition's own write.
type webhookSettings struct {
	cfg webhook.Config
	sub *webhook.Subscription
}

// readWebhookSettings checks WXPAYD_WEBHOOK_URL, WXPAYD_WEBHOOK_SECRET_FILE,
// WXPAYD_WEBHOOK_EVENTS and WXPAYD_WEBHOOK_TIMEOUT; nil when no URL is set
// (then no event is queued, and the other settings must be empty). Errors
// are configErrors naming the setting, never the secret.
func readWebhookSettings(v values, log *slog.Logger) (*webhookSettings, error) {
	if v["WXPAYD_WEBHOOK_URL"] == "" {
		if v["WXPAYD_WEBHOOK_SECRET_FILE"] != "" {
			return nil, cfgErr("WXPAYD_WEBHOOK_SECRET_FILE: set without WXPAYD_WEBHOOK_URL")
		}
		return nil, nil
	}
	if err := v.required("WXPAYD_WEBHOOK_SECRET_FILE"); err != nil {
		return nil, cfgErr("WXPAYD_WEBHOOK_URL needs a secret: %w", err)
	}
	secret, err := v.secret("WXPAYD_WEBHOOK_SECRET_FILE", webhook.MinSecretLen)
	if err != nil {
		return nil, configError{err}
	}
	timeout, err := v.duration("WXPAYD_WEBHOOK_TIMEOUT")
	if err != nil {
		return nil, configError{err}
	}
	if timeout > time.Minute {
		return nil, cfgErr("WXPAYD_WEBHOOK_TIMEOUT: %s is above 1m", timeout)
	}
	sub, err := webhook.NewSubscription(v.list("WXPAYD_WEBHOOK_EVENTS"))
	if err != nil {
		return nil, cfgErr("WXPAYD_WEBHOOK_EVENTS: %w", err)
	}
	cfg := webhook.Config{URL: v["WXPAYD_WEBHOOK_URL"], Secret: secret, Timeout: timeout, Logger: log}
	if err := cfg.Validate(); err != nil {
		return nil, cfgErr("WXPAYD_WEBHOOK_URL: %w", err)
	}
	log.Info("webhooks", "events", sub.Names(), "timeout", timeout)
	return &webhookSettings{cfg: cfg, sub: sub}, nil
}

// match is the store's webhook filter: nil (queue nothing) without a URL.
func (w *webhookSettings) match() func(*event.Event) bool {
	if w == nil {
		return nil
	}
	return w.sub.Match
}

// deliverer builds the deliverer over st; nil without a URL.
func (w *webhookSettings) deliverer(st *store.Store, reg prometheus.Registerer) (*webhook.Deliverer, error) {
	if w == nil {
		return nil, nil
	}
	cfg := w.cfg
	cfg.Registerer = reg
	d, err := webhook.New(cfg, st)
	if err != nil {
		return nil, cfgErr("WXPAYD_WEBHOOK_URL: %w", err)
	}
	return d, nil
}

// webhooks is the admin API's view of the dead letters: nil (the routes
// answer 404) without a deliverer, never a typed nil.
func (a *app) webhooks() ingress.Webhooks {
	if a.hooks == nil {
		return nil
	}
	return a.hooks
}
