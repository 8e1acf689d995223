// Package deploycheck validates what deploy/ holds without a container
// engine or a Kubernetes cluster. It is its own module so that wxpayd's
// module carries none of the Kubernetes, compose or PromQL dependencies.
//
// Run it from this directory:
//
//	go test ./...                                   # offline checks, plus live wxpayd /metrics
//	WXPAYD_INTEGRATION=1 KAFKA_ADDR=… CLICKHOUSE_ADDR=… go test ./...   # also the sink and ClickHouse checks
//
// The tests:
//
//   - k8s_test.go: every manifest in deploy/k8s strict-decoded into the
//     official k8s.io/api types (unknown, misspelt or duplicated fields
//     fail, case-sensitively), then the hardened defaults and the
//     cross-references between objects (selectors, ports, secrets as
//     files, settings, shards, probes) checked.
//   - compose_test.go: deploy/compose loaded and validated by
//     compose-go/v2 (the compose JSON schema, then consistency), alone and
//     with the merchant override; then the hardened defaults, settings,
//     volumes, health checks and the Prometheus scrape targets.
//   - grafana_test.go: dashboards are valid JSON naming provisioned data
//     sources; PromQL parses; ClickHouse SQL names only tables and views
//     the sink's migrations create and only the plugin macros known here.
//   - metrics_test.go: builds the binaries as deploy/Containerfile does,
//     runs wxpaysim and wxpayd, drives traffic so every labelled metric
//     has a series, and checks each metric a dashboard queries against
//     the live /metrics (the sink's metrics against a live wxpaysink when
//     Kafka and ClickHouse are available).
//   - analytics_test.go: runs every ClickHouse dashboard query against a
//     real ClickHouse with the sink's migrations applied.
//   - containerfile_test.go: parses deploy/Containerfile, and reproduces
//     its build stage locally (the COPY'd paths only, the same go build
//     command) with CGO_ENABLED=1 and 0.
package deploycheck
