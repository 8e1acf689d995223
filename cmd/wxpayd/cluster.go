package main

import (
	"log/slog"
	"strconv"

	"github.com/wxpayd/wxpayd/actors"
	"github.com/wxpayd/wxpayd/actors/cluster"
)

// newNode builds the cluster member when WXPAYD_CLUSTER_LISTEN is set;
// nil (single node) otherwise.
func newNode(v values, sys *actors.System, log *slog.Logger) (*cluster.Node, error) {
	if v["WXPAYD_CLUSTER_LISTEN"] == "" {
		for _, s := range []string{"WXPAYD_CLUSTER_HEALTH_PORT", "WXPAYD_CLUSTER_MEMBERS", "WXPAYD_CLUSTER_SHARDS"} {
			if v[s] != "" {
				return nil, cfgErr("%s is set but WXPAYD_CLUSTER_LISTEN is not", s)
			}
		}
		return nil, nil
	}
	if err := v.required("WXPAYD_CLUSTER_HEALTH_PORT", "WXPAYD_CLUSTER_MEMBERS", "WXPAYD_CLUSTER_SHARDS"); err != nil {
		return nil, configError{err}
	}
	port, err := strconv.Atoi(v["WXPAYD_CLUSTER_HEALTH_PORT"])
	if err != nil {
		return nil, cfgErr("WXPAYD_CLUSTER_HEALTH_PORT: %q is not a port", v["WXPAYD_CLUSTER_HEALTH_PORT"])
	}
	timeout, err := v.duration("WXPAYD_CLUSTER_TIMEOUT")
	if err != nil {
		return nil, configError{err}
	}
	reconcile, err := v.duration("WXPAYD_CLUSTER_RECONCILE_AFTER")
	if err != nil {
		return nil, configError{err}
	}
	shard := v["WXPAYD_SHARD"]
	cfg := cluster.Config{
		Name: v["WXPAYD_CLUSTER_NAME"], Listen: v["WXPAYD_CLUSTER_LISTEN"], HealthPort: port,
		Members: v.list("WXPAYD_CLUSTER_MEMBERS"), Shard: shard, Shards: v.list("WXPAYD_CLUSTER_SHARDS"),
		Timeout: timeout, ReconcileAfter: reconcile, Logger: log.With("shard", shard),
	}
	if v["WXPAYD_LOG_LEVEL"] == "debug" {
		cfg.ProtoLogger = log.With("component", "protoactor")
	}
	n, err := cluster.New(cfg, sys)
	if err != nil {
		return nil, configError{err}
	}
	log.Info("cluster mode", "shard", shard, "shards", cfg.Shards, "listen", cfg.Listen, "health_port", port, "members", cfg.Members)
	return n, nil
}
