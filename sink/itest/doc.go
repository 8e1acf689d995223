// Package itest is the gate and the helpers of wxpayd's integration tests,
// the tests that use the real Kafka and ClickHouse that deploy/local
// starts. It is for tests only: _test.go files in any package of the
// module (sink, cmd/wxpayd, bench/load), and bench/rig, the real-binary
// rig those tests share.
//
// The gate: a test asks for the services with Kafka and ClickHouse, or
// with Optional when it can also run without them (on wxpayd's embedded
// broker, say). A set address (KAFKA_ADDR, CLICKHOUSE_ADDR) is returned.
// A missing one
//
//   - fails the test with WXPAYD_INTEGRATION=1, which `make test` sets
//     after starting the services: the services were promised, so their
//     absence is a bug, never a reason to skip;
//   - otherwise (a developer's go test) makes Kafka and ClickHouse skip
//     the test, with a message that says how to start the services, and
//     Optional return "" for it, so the test goes on without that service.
//
// Outage tests stop the shared services. go test runs packages in
// parallel processes, so a test that gets an address here holds a shared
// lock on one file (in os.TempDir) until it ends, and a test that calls
// Outage holds it exclusively: no test that takes the services from this
// package sees one vanish under it. Call Outage first in its test, never
// from a test that already took a service, and not from a parallel test.
//
// Name, Eventually and RepoRoot are the small helpers those tests share.
package itest
