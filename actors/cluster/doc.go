// Package cluster runs wxpayd as one node of several (cluster mode).
//
// Each node is a protoactor-go cluster member: remote (gRPC) on its
// cluster address, membership from the automanaged provider (every node
// polls the others' health port), identity lookup by distributed hash.
// A node registers one cluster kind named after its shard ("shard-02").
// Only that node has the kind, so a grain request for it always activates
// there. The grain forwards to the node's local actors.System.
//
// Node implements ingress.Router: a message for an order of this node's
// shard (out_trade_no's first two characters) goes to the local System;
// one for another shard goes to its node through the cluster with a
// deadline; when that node is not in the topology, or does not answer in
// time, the answer is actors.ErrUnavailable (503, WeChat retries).
//
// SKU stock is owned by one shard per SKU: hash(sku) over the configured
// shard list. A reservation for an order of another shard is written by
// the owner (a durable hold); the order's node later sends release or
// commit, retried until acknowledged, and the owner reconciles holds older
// than ReconcileAfter by asking the order's node for the order's state.
//
// Cluster messages are protobuf: a JSON envelope inside
// wrapperspb.BytesValue.
package cluster
